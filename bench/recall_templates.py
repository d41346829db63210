"""The vocabulary of the recall set: who and what the conversations are about, and how they say it.

Each kind of fact has the sentences that state it, the sentences that change it (empty when it
does not change), questions close to the way it is stated and questions worded differently
(other verbs and nouns, the same proper names, since renaming a person would make a question
unanswerable). Placeholders: {s} the subject, {a} the service's everyday name, {v} the value,
{old} the previous value.
"""

from __future__ import annotations

from dataclasses import dataclass

AGENTS = ("ada", "bob", "cleo", "dex")

PEOPLE = (
    "Grace", "Tomas", "Priya", "Kenji", "Lena", "Omar", "Sofia", "Marcus",
    "Ines", "Yusuf", "Hana", "Dmitri", "Chloe", "Ravi", "Nadia", "Felix",
)  # fmt: skip

# A service's formal name and the everyday words people use for what it does.
SERVICES = (
    ("the billing service", "invoicing"),
    ("the search indexer", "the search results customers see"),
    ("the auth gateway", "logging in"),
    ("the notification service", "the emails and push alerts we send"),
    ("the data warehouse", "the analytics tables"),
    ("the mobile app backend", "the iPhone and Android apps"),
    ("the payments API", "card charges"),
    ("the recommendation engine", "the product suggestions"),
    ("the CI pipeline", "our builds and test runs"),
    ("the customer portal", "the website customers sign into"),
)

PROJECTS = ("Atlas", "Borealis", "Cobalt", "Driftwood", "Ember", "Falcon", "Granite", "Harbor")

SESSION_TOPICS = (
    "standup", "planning", "retro", "support-triage", "offsite-prep", "hiring",
    "incident-review", "roadmap", "one-on-one", "design-review", "launch-prep", "ops-sync",
)  # fmt: skip

CITIES = ("Lisbon", "Osaka", "Berlin", "Toronto", "Nairobi", "Krakow", "Austin", "Melbourne", "Seoul", "Dublin")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
DATES = ("March 3", "April 17", "May 9", "June 12", "June 26", "July 8", "August 21", "September 30", "October 14")


@dataclass(frozen=True)
class FactKind:
    name: str
    subject: str  # "person", "service" or "project"
    values: tuple[str, ...]
    states: tuple[str, ...]
    changes: tuple[str, ...]
    asks: tuple[str, ...]
    rewordings: tuple[str, ...]


FACTS = (
    FactKind(
        "location",
        "person",
        CITIES,
        ("{s} works from the {v} office.", "{s} is based in {v}, so keep the time zone in mind when you book calls."),
        (
            "{s} has relocated to {v}; the first day at the new office is Monday.",
            "Update: {s} moved from {old} to {v} last week.",
        ),
        ("Which office does {s} work from?", "Where is {s} based?"),
        ("In which city does {s} live these days?", "Where would I find {s} if I visited in person?"),
    ),
    FactKind(
        "diet",
        "person",
        ("vegetarian", "vegan", "allergic to peanuts", "gluten-free", "allergic to shellfish"),
        ("Heads-up for the team dinner: {s} is {v}.", "Remember when we order food that {s} is {v}."),
        (),
        ("What dietary needs does {s} have?", "Is {s} on a special diet?"),
        ("What should I avoid ordering for {s} at lunch?", "Anything to keep in mind when booking a restaurant with {s}?"),
    ),
    FactKind(
        "contact",
        "person",
        ("email", "a phone call", "a direct message", "a comment on the ticket"),
        ("{s} prefers {v} over meetings for quick questions.", "For anything quick, {s} likes {v} best."),
        (),
        ("How does {s} prefer to be contacted?", "What does {s} prefer for quick questions?"),
        ("What is the best way to get hold of {s}?", "How should I reach {s} when something small comes up?"),
    ),
    FactKind(
        "birthday",
        "person",
        DATES,
        ("{s}'s birthday is on {v}, let's not forget it this year.", "Note for the calendar: {s} celebrates a birthday on {v}."),
        (),
        ("When is {s}'s birthday?", "What is the date of {s}'s birthday?"),
        ("On what day should we bring a cake for {s}?", "When does {s} turn a year older?"),
    ),
    FactKind(
        "pet",
        "person",
        ("a dog called Pixel", "a cat named Miso", "a parrot called Kiwi", "a beagle called Biscuit", "two rabbits"),
        ("{s} just adopted {v}.", "{s} brought {v} to the office today and everybody loved it."),
        (),
        ("What pet does {s} have?", "What kind of pet does {s} have?"),
        ("What animal lives with {s}?", "Who is the furry friend at {s}'s home?"),
    ),
    FactKind(
        "role",
        "person",
        (
            "the engineering manager",
            "our security lead",
            "the product designer for checkout",
            "the data analyst",
            "the head of support",
        ),
        ("{s} joined as {v}.", "Please welcome {s}, who is {v} from now on."),
        ("{s} is now {v}; the promotion was announced this morning.", "Org change: {s}, until now {old}, becomes {v}."),
        ("What is {s}'s role?", "What is {s}'s job title?"),
        ("What does {s} do here?", "Which position does {s} hold in the company?"),
    ),
    FactKind(
        "leave",
        "person",
        ("May 4 to May 15", "July 20 to August 2", "August 3 to August 28", "June 1 to June 10"),
        ("{s} is on holiday from {v}.", "{s} will be away on vacation from {v}, plan around it."),
        ("{s} moved the holiday to {v}.", "Change of plans: {s} is now off from {v} instead."),
        ("When is {s} on holiday?", "When will {s} be on vacation?"),
        ("When will {s} be out of office?", "Which weeks is {s} unavailable?"),
    ),
    FactKind(
        "owner",
        "service",
        PEOPLE,
        ("{v} maintains {s}.", "{v} is the owner of {s}.", "If {s} breaks, ping {v}, it's theirs."),
        ("{S} has a new owner: {v} took it over from {old}.", "{old} handed {s} over to {v} this week."),
        ("Who maintains {s}?", "Who owns {s}?"),
        ("Who looks after {a}?", "Whom should I ask when something is wrong with {a}?"),
    ),
    FactKind(
        "language",
        "service",
        ("Go", "Rust", "Python", "Kotlin", "TypeScript", "Elixir"),
        ("{S} is written in {v}.", "{S} was rewritten in {v} last year."),
        (),
        ("What language is {s} written in?", "Which language is {s} implemented in?"),
        ("Which programming language powers {a}?", "What do I need to know to hack on the code behind {a}?"),
    ),
    FactKind(
        "bug",
        "service",
        (
            "drops requests larger than one megabyte",
            "leaks memory after two days of uptime",
            "returns a 500 error when a user name contains an emoji",
            "times out every night at 02:00 UTC while the backup runs",
            "sends every message twice after a restart",
            "ignores the daylight saving change",
        ),
        ("Found a nasty bug: {s} {v}.", "Support reported a bug: {s} {v}."),
        (),
        ("What bug did we find in {s}?", "Which bug was reported in {s}?"),
        ("What is going wrong with {a} right now?", "Which defect did customers hit with {a}?"),
    ),
    FactKind(
        "oncall",
        "service",
        PEOPLE,
        ("{v} is on call for {s} this week.", "The pager for {s} is with {v} this week."),
        ("This week {v} takes the on-call pager for {s}, {old} is off.", "On-call swap for {s}: {v} replaces {old}."),
        ("Who is on call for {s}?", "Who has the on-call pager for {s}?"),
        ("Who gets woken up at night when there is trouble with {a}?", "Who is answering alerts for {a} at the moment?"),
    ),
    FactKind(
        "region",
        "service",
        ("eu-west-1", "us-east-2", "the Frankfurt data centre", "ap-northeast-1"),
        ("{S} runs in {v}.", "{S} is deployed in {v}."),
        ("We migrated {s} from {old} to {v} over the weekend.", "{S} now lives in {v} after the migration."),
        ("Where does {s} run?", "In which region is {s} deployed?"),
        ("Where are the servers behind {a}?", "Which data centre serves {a}?"),
    ),
    FactKind(
        "deploy_day",
        "project",
        WEEKDAYS,
        ("We ship {s} to production every {v}.", "Release day for {s} is {v}."),
        ("Heads-up: {s} releases move from {old} to {v}, starting next week.", "From now on {s} goes out on {v}s instead."),
        ("Which day do we deploy {s}?", "On which day of the week is {s} released?"),
        ("When in the week does {s} go live?", "What weekday do new versions of {s} reach customers?"),
    ),
    FactKind(
        "launch",
        "project",
        DATES,
        ("The {s} launch is planned for {v}.", "We are aiming to launch {s} on {v}."),
        ("The {s} launch slipped to {v}, marketing knows.", "New date for the {s} launch: {v}."),
        ("When is the {s} launch?", "When do we launch {s}?"),
        ("When do customers first get to see {s}?", "What is the go-live date for {s}?"),
    ),
    FactKind(
        "budget",
        "project",
        ("40k euros", "55k euros", "75k euros", "90k euros", "120k euros"),
        ("{s} has a budget of {v} for this quarter.", "Finance approved {v} for {s} this quarter."),
        ("Finance changed the {s} budget to {v}.", "The {s} budget is {v} now, not {old}."),
        ("What is the budget for {s}?", "How big is the {s} budget?"),
        ("How much money can {s} spend this quarter?", "What funding did {s} get?"),
    ),
    FactKind(
        "database",
        "project",
        ("PostgreSQL", "MongoDB", "DynamoDB", "SQLite", "Cassandra"),
        ("We decided to use {v} for {s}.", "Decision for {s}: we go with {v}."),
        ("We are switching {s} from {old} to {v} after the load test.", "{s} moves to {v}, the load test settled it."),
        ("Which database did we choose for {s}?", "What database does {s} use?"),
        ("Where will {s} keep its data?", "What storage did the team settle on for {s}?"),
    ),
    FactKind(
        "lead",
        "project",
        PEOPLE,
        ("{v} leads {s}.", "{v} is the lead on {s}."),
        ("{v} takes over {s} from {old}.", "New lead for {s}: {v}, since {old} moved on."),
        ("Who leads {s}?", "Who is the lead of {s}?"),
        ("Who is running the {s} effort?", "Who is in charge of {s}?"),
    ),
    FactKind(
        "customer",
        "project",
        ("Acme Corp", "Globex", "Initech", "Umbrella Health", "Stark Logistics"),
        ("The first customer for {s} is {v}.", "{v} signed up as the pilot customer of {s}."),
        (),
        ("Who is the first customer of {s}?", "Which pilot customer signed up for {s}?"),
        ("Which client will try {s} before everyone else?", "Which company is trialling {s}?"),
    ),
)

# Two facts that answer one question together. chained: the second fact is about the value of
# the first (the owner of a service, then where that owner works); otherwise both are about the
# same subject. {s}: the first fact's subject, {a}: its everyday name. A table: its rows are alike by design.
MULTI = (
    ("owner", "location", True, "In which city does the person who maintains {s} work?"),
    ("owner", "contact", True, "How should I reach whoever looks after {a}?"),
    ("lead", "diet", True, "Does the lead of {s} have any dietary needs?"),
    ("lead", "birthday", True, "When is the birthday of whoever leads {s}?"),
    ("bug", "owner", False, "What is broken in {s}, and who should fix it?"),
    ("database", "launch", False, "Which database will {s} use, and when does it launch?"),
    ("customer", "budget", False, "Who is the first customer of {s}, and what budget do we have for it?"),
    ("language", "region", False, "What is {s} written in and where is it deployed?"),
    ("oncall", "location", True, "Which city is the person on call for {s} in?"),
    ("location", "contact", False, "Where does {s} work from, and how does {s} like to be contacted?"),
    ("diet", "birthday", False, "We are planning {s}'s birthday lunch: which day is it, and what food works?"),
    ("role", "leave", False, "What is {s}'s job here, and when is {s} away on holiday?"),
    ("pet", "location", False, "Which pet does {s} have, and in which office could I meet it?"),
)

# Small talk around the facts; mentions the same people, services and words as the facts do,
# as real conversations do, without stating any fact. {p} and {q} people, {s} a service, {j} a project,
# {c} a city, {d} a weekday.
FILLER = (
    "Did anyone see {p}'s message about {s}? I only skimmed it.",
    "{p} says hi to everyone, by the way.",
    "I'll sync with {p} about {j} later today.",
    "The dashboard for {s} is slow for me, probably just my VPN.",
    "Coffee first, then {j}.",
    "We should write down who maintains what, the wiki is outdated.",
    "Is the {j} planning doc still the latest version?",
    "Can you share the link to the {j} board?",
    "I'm offline for an hour, dentist appointment.",
    "The weather in {c} looks lovely this week.",
    "Has {p} seen the new design for {j} yet?",
    "Let me look into {s} after lunch.",
    "Thanks, that helps a lot.",
    "Sounds good to me.",
    "Who is taking notes today?",
    "I keep forgetting which day the {j} sync is, sorry.",
    "{p} and I grabbed lunch near the office, great ramen place.",
    "Any news on the budget discussions? No rush.",
    "The launch party ideas thread is getting long.",
    "Our deploy tooling needs some love at some point.",
    "The on-call rota spreadsheet is in the shared drive.",
    "I'll ask {p} whether {s} needs anything from us this sprint.",
    "Good morning everyone!",
    "Quick reminder to fill in the feedback survey.",
    "Did the {d} demo get recorded?",
    "I'm travelling to {c} next month for a conference, any tips?",
    "Nice work on the {j} demo, everyone.",
    "Let's keep the database debate for the design review.",
    "{p} is in back-to-back meetings until three.",
    "Who broke the build? Just kidding, it was flaky tests again.",
    "Can someone review my pull request for {s}?",
    "I'll be late to the {d} meeting, start without me.",
    "Happy Friday, folks.",
    "The office plants need watering again.",
    "Is anyone else's laptop fan screaming today?",
    "Let's celebrate once {j} is out, maybe a dinner?",
    "{p} asked whether we could move the retro, I said I'd check.",
    "The holiday calendar is up to date, please add yours.",
    "I read an article about alternatives to {s}, interesting but not for now.",
    "We had pizza again, somebody stop us.",
    "{p} was asking about the {j} budget spreadsheet, does anyone have the link?",
    "I told {p} the {j} launch checklist is in the wiki.",
    "{p} and {q} are pairing on {s} today.",
    "Who is organising the next team dinner? {p} offered to help.",
    "{p} is looking for pet sitter recommendations, any ideas?",
    "Has {p} filled in the holiday form yet? HR asked me.",
    "{p} shared a great article about on-call fatigue.",
    "I'll ask {p} which database benchmarks we still need for {j}.",
    "{p} wants a quick call about {j} before the deploy.",
    "Does {p} have the slides from the {j} review?",
    "{p} said the new office chairs are finally here.",
    "Can {p} or {q} take a look at the flaky test in {s}?",
    "{p} mentioned the {j} roadmap needs another pass.",
    "I owe {p} a coffee for the help with {s}.",
    "{p} is presenting {j} at the all-hands on {d}.",
    "{p} is out sick today, {q} covers the standup.",
    "{p} just pushed a fix to {s}, fingers crossed.",
    "Who has the role descriptions for the new hires? {p} wants to read them.",
    "The {j} team is celebrating {p}'s work anniversary with cake.",
    "{p} asked me where the {j} runbook lives.",
    "{p} thinks we should move the {j} retro to {d}.",
    "Let's ask {p} about the vacation policy, they know it best.",
    "{q} and {p} are debating tabs versus spaces again.",
    "{p} is writing the postmortem for last year's outage of {s}.",
    "The budget review with finance went fine, {p} says.",
    "Reminder: {p} hosts the lunch-and-learn on {s} this {d}.",
)

AGENT_FILLER = (
    "Noted, thanks.",
    "Got it.",
    "I have added that to my notes.",
    "Want me to draft a summary for {j}?",
    "Sure, I'll remind you tomorrow morning.",
    "I can prepare the agenda for the next sync if that helps.",
    "Understood.",
    "I'll keep an eye on {s} and tell you if anything changes.",
    "Here is what I have so far; let me know what is missing.",
    "Happy to help with {j} whenever you need.",
)

PRIVATE_PREFIXES = ("Between us: ", "Just for you: ", "Private note: ")
