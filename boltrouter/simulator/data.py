"""Static data of the simulated world: leagues, teams, books, name pools."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class League:
    """One league as upstream names it (``sport`` in every message)."""

    name: str                 # "NBA", "EPL", "ATP": the exact upstream sport string
    kind: str                 # basketball, football, baseball, hockey, soccer, tennis
    teams: tuple[str, ...]
    periods: int              # quarters, periods, innings, halves, sets (best of)
    period_seconds: int       # game seconds in one period (0: not clock-driven)
    duration_minutes: int     # wall length of a real game, for spreading start times
    props: tuple[tuple[str, float], ...]   # player prop markets and a typical line
    spread_name: str          # the spread market as books name it
    expected_total: float     # points/runs/goals/games in a typical game
    stream: int               # play-by-play stream carrying this league (0: none)


NBA = League("NBA", "basketball", (
    "Atlanta Hawks", "Boston Celtics", "Brooklyn Nets", "Charlotte Hornets", "Chicago Bulls",
    "Cleveland Cavaliers", "Dallas Mavericks", "Denver Nuggets", "Detroit Pistons",
    "Golden State Warriors", "Houston Rockets", "Indiana Pacers", "Los Angeles Clippers",
    "Los Angeles Lakers", "Memphis Grizzlies", "Miami Heat", "Milwaukee Bucks",
    "Minnesota Timberwolves", "New Orleans Pelicans", "New York Knicks",
    "Oklahoma City Thunder", "Orlando Magic", "Philadelphia 76ers", "Phoenix Suns",
    "Portland Trail Blazers", "Sacramento Kings", "San Antonio Spurs", "Toronto Raptors",
    "Utah Jazz", "Washington Wizards"),
    4, 720, 150, (("Points", 22.5), ("Rebounds", 7.5), ("Assists", 5.5)),
    "Spread", 226.0, 2)

NFL = League("NFL", "football", (
    "Arizona Cardinals", "Atlanta Falcons", "Baltimore Ravens", "Buffalo Bills",
    "Carolina Panthers", "Chicago Bears", "Cincinnati Bengals", "Cleveland Browns",
    "Dallas Cowboys", "Denver Broncos", "Detroit Lions", "Green Bay Packers",
    "Houston Texans", "Indianapolis Colts", "Jacksonville Jaguars", "Kansas City Chiefs",
    "Las Vegas Raiders", "Los Angeles Chargers", "Los Angeles Rams", "Miami Dolphins",
    "Minnesota Vikings", "New England Patriots", "New Orleans Saints", "New York Giants",
    "New York Jets", "Philadelphia Eagles", "Pittsburgh Steelers", "San Francisco 49ers",
    "Seattle Seahawks", "Tampa Bay Buccaneers", "Tennessee Titans", "Washington Commanders"),
    4, 900, 195, (("Passing Yards", 245.5), ("Rushing Yards", 62.5),
                  ("Receiving Yards", 58.5)),
    "Spread", 45.5, 1)

MLB = League("MLB", "baseball", (
    "Arizona Diamondbacks", "Atlanta Braves", "Baltimore Orioles", "Boston Red Sox",
    "Chicago Cubs", "Chicago White Sox", "Cincinnati Reds", "Cleveland Guardians",
    "Colorado Rockies", "Detroit Tigers", "Houston Astros", "Kansas City Royals",
    "Los Angeles Angels", "Los Angeles Dodgers", "Miami Marlins", "Milwaukee Brewers",
    "Minnesota Twins", "New York Mets", "New York Yankees", "Athletics",
    "Philadelphia Phillies", "Pittsburgh Pirates", "San Diego Padres",
    "San Francisco Giants", "Seattle Mariners", "St. Louis Cardinals", "Tampa Bay Rays",
    "Texas Rangers", "Toronto Blue Jays", "Washington Nationals"),
    9, 0, 170, (("Hits", 0.5), ("Home Runs", 0.5), ("Strikeouts", 5.5)),
    "Run Line", 8.5, 4)

NHL = League("NHL", "hockey", (
    "Anaheim Ducks", "Boston Bruins", "Buffalo Sabres", "Calgary Flames",
    "Carolina Hurricanes", "Chicago Blackhawks", "Colorado Avalanche",
    "Columbus Blue Jackets", "Dallas Stars", "Detroit Red Wings", "Edmonton Oilers",
    "Florida Panthers", "Los Angeles Kings", "Minnesota Wild", "Montreal Canadiens",
    "Nashville Predators", "New Jersey Devils", "New York Islanders", "New York Rangers",
    "Ottawa Senators", "Philadelphia Flyers", "Pittsburgh Penguins", "San Jose Sharks",
    "Seattle Kraken", "St. Louis Blues", "Tampa Bay Lightning", "Toronto Maple Leafs",
    "Utah Mammoth", "Vancouver Canucks", "Vegas Golden Knights", "Washington Capitals",
    "Winnipeg Jets"),
    3, 1200, 160, (("Goals", 0.5), ("Shots On Goal", 2.5)),
    "Puck Line", 6.0, 4)

EPL = League("EPL", "soccer", (
    "Arsenal", "Aston Villa", "Bournemouth", "Brentford", "Brighton", "Burnley", "Chelsea",
    "Crystal Palace", "Everton", "Fulham", "Leeds United", "Liverpool", "Manchester City",
    "Manchester United", "Newcastle United", "Nottingham Forest", "Sunderland",
    "Tottenham Hotspur", "West Ham United", "Wolverhampton"),
    2, 2700, 115, (("Shots On Target", 0.5), ("Shots", 1.5)),
    "Asian Handicap", 2.5, 3)

ATP = League("ATP", "tennis", (
    "Jannik Sinner", "Carlos Alcaraz", "Alexander Zverev", "Taylor Fritz", "Novak Djokovic",
    "Jack Draper", "Lorenzo Musetti", "Alex de Minaur", "Ben Shelton", "Holger Rune",
    "Casper Ruud", "Daniil Medvedev", "Tommy Paul", "Andrey Rublev", "Frances Tiafoe",
    "Grigor Dimitrov", "Karen Khachanov", "Alexander Bublik", "Jakub Mensik",
    "Arthur Fils"),
    3, 0, 120, (("Aces", 6.5), ("Double Faults", 2.5)),
    "Game Spread", 22.5, 0)

LEAGUES: tuple[League, ...] = (NBA, NFL, MLB, NHL, EPL, ATP)
LEAGUE_BY_NAME = {league.name: league for league in LEAGUES}

# Book name -> (link template, rounds to 5, spells over/under as O/U, offers props, vig)
BOOKS: dict[str, tuple[str, bool, bool, bool, float]] = {
    "draftkings": ("https://sportsbook.draftkings.com/event/{id}", True, False, True, 0.045),
    "fanduel": ("https://sportsbook.fanduel.com/event/{id}", True, False, True, 0.045),
    "betmgm": ("https://sports.betmgm.com/en/sports/events/{id}", True, False, True, 0.05),
    "caesars": ("https://sportsbook.caesars.com/us/event/{id}", True, True, True, 0.05),
    "pinnacle": ("https://www.pinnacle.com/en/event/{id}", False, False, False, 0.025),
    "ballybet": ("https://play.ballybet.ca/sports#event/{id}", True, True, True, 0.055),
    "betrivers": ("https://www.betrivers.com/#event/{id}", True, False, False, 0.05),
}
PARLAY_BOOKS = ("draftkings", "fanduel")

FIRST_NAMES = (
    "James", "Marcus", "Jalen", "Tyler", "Devin", "Jordan", "Chris", "Anthony", "Brandon",
    "Luka", "Nikola", "Kevin", "Trey", "Isaiah", "Cole", "Mason", "Derrick", "Andre",
    "Victor", "Cameron", "Julian", "Austin", "Bryce", "Elijah", "Gabriel", "Logan",
)
LAST_NAMES = (
    "Allen", "Brooks", "Carter", "Daniels", "Edwards", "Fields", "Green", "Harris",
    "Irving", "Jackson", "Knight", "Lewis", "Mitchell", "Nelson", "Owens", "Parker",
    "Quinn", "Reed", "Sanders", "Turner", "Underwood", "Vasquez", "Walker", "Young",
    "Zimmerman", "Bennett", "Coleman", "Foster", "Hayes", "Morgan",
)
