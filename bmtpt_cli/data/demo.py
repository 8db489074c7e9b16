"""Five tiny demo tasks, generated offline from templates written for this project.

The demo lets every command run end to end with no download and in seconds: each task has
320 train, 64 validation and 64 test records, generated from fixed word lists with a
`random.Random` seeded by `zlib.crc32(task name)`, so every machine and every call sees the same
records. Labels are balanced in every split, the label is decided by words in the input (so a
model can learn it), and no input text appears in two splits.

The tasks come in related pairs so that source -> target transfer has something to transfer:
demo_sentiment (source) and demo_review (target) share the sentence-polarity structure and part
of their adjectives; demo_nli (source) and demo_rte (target) are both "does the second sentence
follow from the first", over different domains; demo_topic (source) is a third, unrelated
classification task. The demo presets use sources demo_sentiment,demo_nli,demo_topic and targets
demo_review,demo_rte.
"""

from __future__ import annotations

import functools
import random
import zlib
from typing import Callable

from bmtpt_cli.data.task import SPLITS, Task
from bmtpt_cli.errors import BmtptError

TRAIN_SIZE = 320
VALIDATION_SIZE = 64
TEST_SIZE = 64
SPLIT_SIZES = {"train": TRAIN_SIZE, "validation": VALIDATION_SIZE, "test": TEST_SIZE}
_MAX_TRIES = 1000  # redraws allowed to find an input not generated before

# ---------------------------------------------------------------- shared word lists

NAMES = (
    "Mia", "Noah", "Ava", "Liam", "Zoe", "Omar", "Lena", "Ravi", "Iris", "Hugo",
    "Nora", "Theo", "Maya", "Ezra", "Lucy", "Jonas", "Amara", "Felix", "Sofia", "Kenji",
    "Clara", "Mateo", "Ines", "Arjun", "Hana", "Oscar", "Priya", "Leo", "Elsa", "Tariq",
)
CITIES = (
    "Lisbon", "Oslo", "Denver", "Nairobi", "Lima", "Osaka", "Dublin", "Perth", "Quito", "Tunis",
    "Hanoi", "Porto", "Leeds", "Austin", "Bergen", "Cairo", "Seoul", "Turin", "Zagreb", "Accra",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "March", "April", "May", "June", "July", "September", "October", "November")
COLOURS = (
    "red", "blue", "green", "yellow", "black", "white",
    "orange", "purple", "grey", "brown", "pink", "silver",
)

# ---------------------------------------------------------------- polarity words
# Sentiment and review share the general adjectives and differ in their domain ones.

SHARED_POSITIVE = ("excellent", "wonderful", "great", "superb", "lovely", "fantastic")
SHARED_NEGATIVE = ("terrible", "awful", "dreadful", "poor", "disappointing", "horrible")
PRODUCT_POSITIVE = ("sturdy", "reliable", "comfortable", "solid", "handy", "well made")
PRODUCT_NEGATIVE = ("flimsy", "faulty", "uncomfortable", "shoddy", "useless", "badly made")
FOOD_POSITIVE = ("tasty", "fresh", "delicious", "flavourful", "generous", "perfect")
FOOD_NEGATIVE = ("bland", "stale", "greasy", "burnt", "soggy", "overcooked")
SERVICE_POSITIVE = ("friendly", "helpful", "attentive", "polite", "cheerful", "welcoming")
SERVICE_NEGATIVE = ("rude", "slow", "careless", "unhelpful", "grumpy", "dismissive")
REVIEW_POSITIVE = ("gripping", "moving", "clever", "charming", "thrilling", "beautiful")
REVIEW_NEGATIVE = ("boring", "dull", "tedious", "clumsy", "confusing", "shallow")

SENTIMENT_POSITIVE = SHARED_POSITIVE + PRODUCT_POSITIVE + FOOD_POSITIVE + SERVICE_POSITIVE
SENTIMENT_NEGATIVE = SHARED_NEGATIVE + PRODUCT_NEGATIVE + FOOD_NEGATIVE + SERVICE_NEGATIVE
REVIEW_ALL_POSITIVE = SHARED_POSITIVE[:4] + REVIEW_POSITIVE
REVIEW_ALL_NEGATIVE = SHARED_NEGATIVE[:4] + REVIEW_NEGATIVE

# ---------------------------------------------------------------- demo_sentiment

PRODUCTS = (
    "blender", "vacuum", "headphones", "backpack", "phone case", "desk lamp", "mattress",
    "toaster", "keyboard", "charger", "jacket", "sofa", "printer", "water bottle",
    "coffee maker", "speaker", "rug", "tent", "suitcase", "office chair",
)
DISHES = (
    "soup", "burger", "pizza", "curry", "salad", "noodles", "steak",
    "dessert", "bread", "pancakes", "tacos", "pie",
)
VENUES = (
    "diner", "bistro", "cafe", "pizzeria", "noodle bar", "bakery",
    "steakhouse", "food truck", "restaurant", "tea room",
)
INTENSIFIERS = ("really", "truly", "quite", "very", "so", "simply")
PERIODS = ("a week", "a month", "two weeks", "a few days", "a year", "three months")


def _sentiment(rng: random.Random, label: int) -> dict:
    pick = rng.choice
    product = (SHARED_POSITIVE + PRODUCT_POSITIVE, SHARED_NEGATIVE + PRODUCT_NEGATIVE)[1 - label]
    food = (SHARED_POSITIVE + FOOD_POSITIVE, SHARED_NEGATIVE + FOOD_NEGATIVE)[1 - label]
    service = (SHARED_POSITIVE + SERVICE_POSITIVE, SHARED_NEGATIVE + SERVICE_NEGATIVE)[1 - label]
    sentence = pick((
        lambda: f"The {pick(PRODUCTS)} I bought last {pick(WEEKDAYS)} is {pick(product)}.",
        lambda: f"This {pick(PRODUCTS)} is {pick(INTENSIFIERS)} {pick(product)}.",
        lambda: f"My new {pick(PRODUCTS)} still seems {pick(product)} after {pick(PERIODS)}.",
        lambda: f"The {pick(DISHES)} at the {pick(VENUES)} was {pick(food)}.",
        lambda: f"We had {pick(DISHES)} at a {pick(VENUES)} and it was "
        f"{pick(INTENSIFIERS)} {pick(food)}.",
        lambda: f"The staff at this {pick(VENUES)} were {pick(INTENSIFIERS)} {pick(service)}.",
    ))()
    return {"sentence": sentence}


# ---------------------------------------------------------------- demo_review

GENRES = (
    "crime", "comedy", "drama", "mystery", "romance", "western",
    "fantasy", "war", "spy", "horror", "sci-fi", "family",
)
SUBJECTS = (
    "a lighthouse keeper", "two rival chefs", "a lost dog", "a fishing town", "a chess prodigy",
    "an old detective", "a family reunion", "a space station", "a circus", "a retired pilot",
    "a haunted hotel", "a school band", "a rescue team", "a forgotten painter", "twin sisters",
    "a night train", "a small island", "a young queen", "a stolen violin", "a desert road",
)
FILM_ASPECTS = (
    "plot", "acting", "dialogue", "pacing", "ending", "soundtrack", "cast", "camera work",
)
BOOK_ASPECTS = ("plot", "writing", "dialogue", "pacing", "ending", "characters", "prose", "twist")


def _review(rng: random.Random, label: int) -> dict:
    pick = rng.choice
    words = (REVIEW_ALL_POSITIVE, REVIEW_ALL_NEGATIVE)[1 - label]
    first, second = rng.sample(words, 2)
    film_a, film_b = rng.sample(FILM_ASPECTS, 2)
    book_a, book_b = rng.sample(BOOK_ASPECTS, 2)
    review = pick((
        lambda: f"I watched a {pick(GENRES)} film about {pick(SUBJECTS)}. "
        f"The {film_a} was {first} and the {film_b} was {second}.",
        lambda: f"This {pick(GENRES)} novel follows {pick(SUBJECTS)}. "
        f"I found the {book_a} {first} from start to finish.",
        lambda: f"The new {pick(GENRES)} movie about {pick(SUBJECTS)} opened on {pick(WEEKDAYS)}. "
        f"Its {film_a} felt {first}.",
        lambda: f"A {pick(GENRES)} book about {pick(SUBJECTS)}. "
        f"{first.capitalize()} {book_a}, {second} {book_b}.",
        lambda: f"We saw the {pick(GENRES)} film with {pick(NAMES)} on {pick(WEEKDAYS)}. "
        f"The {film_a} was {first}.",
    ))()
    return {"review": review}


# ---------------------------------------------------------------- demo_nli

OBJECTS = (
    "bicycle", "umbrella", "kettle", "guitar", "lamp", "backpack", "scooter", "ladder",
    "suitcase", "camera", "toolbox", "blanket", "wheelbarrow", "skateboard", "teapot",
    "bucket", "chair", "kite", "drum", "typewriter",
)
ROOMS = (
    "garden", "garage", "kitchen", "attic", "basement", "hallway",
    "shed", "bedroom", "studio", "office", "cellar", "porch",
)
GIVERS = ("a friend", "a neighbour", "a cousin", "a colleague", "a teacher", "an uncle")


def _nli(rng: random.Random, label: int) -> dict:
    pick = rng.choice
    name, thing, room = pick(NAMES), pick(OBJECTS), pick(ROOMS)
    colour, other_colour = rng.sample(COLOURS, 2)
    premise = pick((
        f"{name} keeps a {colour} {thing} in the {room}.",
        f"In the {room}, {name} keeps a {colour} {thing}.",
        f"{name} stores a {colour} {thing} in the {room}.",
    ))
    hypotheses = (
        (  # entailment: follows from the premise
            f"{name} has a {thing}.",
            f"{name} keeps a {thing} in the {room}.",
            f"There is a {colour} {thing} in the {room}.",
            f"{name} owns something {colour}.",
        ),
        (  # neutral: neither follows nor conflicts
            f"{name} bought the {thing} last {pick(MONTHS)}.",
            f"{name} uses the {thing} every {pick(WEEKDAYS)}.",
            f"{name} got the {thing} from {pick(GIVERS)}.",
            f"{name} wants to sell the {thing} soon.",
        ),
        (  # contradiction: cannot both be true
            f"{name} has no {thing}.",
            f"The {thing} that {name} keeps in the {room} is {other_colour}.",
            f"{name} keeps nothing in the {room}.",
            f"{name} does not own a {thing}.",
        ),
    )
    return {"premise": premise, "hypothesis": pick(hypotheses[label])}


# ---------------------------------------------------------------- demo_rte

EVENTS = (
    "concert", "book fair", "film festival", "marathon", "chess tournament",
    "science fair", "jazz night", "flower show", "food market", "art exhibition",
)
COMPANIES = (
    "Northwind", "Bluepeak", "Solara", "Ironleaf", "Brightmill",
    "Cobaltline", "Greenhaven", "Redcliff", "Silverbrook", "Tallpine",
)
BUILDINGS = ("factory", "warehouse", "office", "laboratory", "store", "workshop", "clinic", "depot")
HOURS = ("eight", "nine", "ten", "eleven", "two", "three", "four", "six", "seven")
YEARS = tuple(str(year) for year in range(2001, 2021))


def _rte(rng: random.Random, label: int) -> dict:
    pick = rng.choice
    city, other_city = rng.sample(CITIES, 2)
    day, other_day = rng.sample(WEEKDAYS, 2)
    year, other_year = rng.sample(YEARS, 2)
    event, company, building, person = pick(EVENTS), pick(COMPANIES), pick(BUILDINGS), pick(NAMES)
    scenarios = (
        (
            f"The {event} in {city} opens on {day} at {pick(HOURS)} o'clock.",
            (f"The {event} takes place in {city}.", f"The {event} opens on {day}."),
            (
                f"The {event} takes place in {other_city}.",
                f"The {event} opens on {other_day}.",
                f"The {event} in {city} has been cancelled.",
                f"Entry to the {event} is free.",
            ),
        ),
        (
            f"{company} opened a {building} in {city} in {year}.",
            (f"{company} has a {building} in {city}.", f"{company} opened a {building} in {year}."),
            (
                f"{company} opened the {building} in {other_year}.",
                f"{company} has a {building} in {other_city}.",
                f"The {building} in {city} employs {pick(HOURS)} hundred people.",
                f"{company} closed its {building} in {city} in {year}.",
            ),
        ),
        (
            f"{person} moved from {city} to {other_city} in {year}.",
            (f"{person} once lived in {city}.", f"{person} moved to {other_city} in {year}."),
            (
                f"{person} moved from {other_city} to {city}.",
                f"{person} has never been to {other_city}.",
                f"{person} moved to {other_city} for a new job.",
                f"{person} was born in {other_city}.",
            ),
        ),
    )
    sentence1, entailed, not_entailed = pick(scenarios)
    return {"sentence1": sentence1, "sentence2": pick((entailed, not_entailed)[label])}


# ---------------------------------------------------------------- demo_topic

SPORTS = (
    "football", "tennis", "hockey", "cricket", "basketball",
    "rugby", "volleyball", "baseball", "badminton", "handball",
)
FOODS = (
    "soup", "pasta", "curry", "salad", "risotto", "pancakes",
    "dumplings", "stew", "noodles", "omelette", "lasagne", "tacos",
)
INGREDIENTS = (
    "garlic", "ginger", "lemon", "basil", "mushrooms", "cheese",
    "spinach", "tomatoes", "onions", "chili", "honey", "butter",
)
PRECIPITATION = ("rain", "snow", "hail", "sleet", "fog", "showers", "thunderstorms", "drizzle")
SKIES = ("clear", "cloudy", "grey", "sunny", "stormy", "hazy")
TEMPERATURES = ("minus five", "zero", "three", "eight", "twelve", "eighteen", "twenty", "thirty")
MINUTES = ("five", "ten", "fifteen", "twenty", "thirty", "forty")


def _topic(rng: random.Random, label: int) -> dict:
    pick = rng.choice
    name, city, day = pick(NAMES), pick(CITIES), pick(WEEKDAYS)
    templates = (
        (  # sports
            lambda: f"{name} scored twice in the {pick(SPORTS)} match against {city} on {day}.",
            lambda: f"The {city} {pick(SPORTS)} team won the final after extra time.",
            lambda: f"Our {pick(SPORTS)} coach wants two more training sessions before {day}.",
            lambda: f"{name} was injured during {pick(SPORTS)} practice in {city}.",
        ),
        (  # food
            lambda: f"{name} cooked {pick(FOODS)} with {pick(INGREDIENTS)} for dinner on {day}.",
            lambda: f"The new cafe in {city} serves {pick(FOODS)} with extra {pick(INGREDIENTS)}.",
            lambda: f"Add the {pick(INGREDIENTS)} and stir the {pick(FOODS)} "
            f"for {pick(MINUTES)} minutes.",
            lambda: f"{name} ordered {pick(FOODS)} with {pick(INGREDIENTS)} for lunch in {city}.",
        ),
        (  # weather
            lambda: f"Heavy {pick(PRECIPITATION)} is expected in {city} on {day} morning.",
            lambda: f"The forecast for {city} says {pick(TEMPERATURES)} degrees "
            f"and {pick(SKIES)} skies.",
            lambda: f"A cold front will bring {pick(PRECIPITATION)} to {city} by {day} evening.",
            lambda: f"Temperatures in {city} fell to {pick(TEMPERATURES)} degrees on {day} night.",
        ),
    )
    return {"sentence": pick(templates[label])()}


# ---------------------------------------------------------------- generation and the tasks


def _seed(name: str) -> int:
    """A seed fixed by the task name alone (crc32 is stable; Python's hash() is not)."""
    return zlib.crc32(name.encode("utf-8"))


@functools.lru_cache(maxsize=None)
def _generate(name: str) -> dict[str, tuple[dict, ...]]:
    """All splits of one demo task: labels balanced per split, every input used at most once."""
    make, fields, num_labels = _MAKERS[name]
    rng = random.Random(_seed(name))
    seen: set[tuple[str, ...]] = set()
    splits: dict[str, tuple[dict, ...]] = {}
    for split in SPLITS:
        labels = [i % num_labels for i in range(SPLIT_SIZES[split])]
        rng.shuffle(labels)
        records = []
        for label in labels:
            for _ in range(_MAX_TRIES):
                record = make(rng, label)
                key = tuple(record[field] for field in fields)
                if key not in seen:
                    break
            else:  # only reachable if the word lists above were cut too short
                total = sum(SPLIT_SIZES.values())
                raise RuntimeError(f"{name}: templates cannot give {total} distinct inputs")
            seen.add(key)
            records.append({**record, "label": label})
        splits[split] = tuple(records)
    return splits


def _load(name: str, split: str, data_dir=None) -> list[dict]:  # noqa: ARG001 — demo data is built in
    """Records of one split of a demo task, as fresh dicts the caller may change."""
    if split not in SPLIT_SIZES:
        raise BmtptError(f"task {name} has no split {split!r}; use one of {', '.join(SPLITS)}")
    return [dict(record) for record in _generate(name)[split]]


_MAKERS: dict[str, tuple[Callable[[random.Random, int], dict], tuple[str, ...], int]] = {
    "demo_sentiment": (_sentiment, ("sentence",), 2),
    "demo_review": (_review, ("review",), 2),
    "demo_nli": (_nli, ("premise", "hypothesis"), 3),
    "demo_rte": (_rte, ("sentence1", "sentence2"), 2),
    "demo_topic": (_topic, ("sentence",), 3),
}

_SPECS = {  # name -> (label words, description)
    "demo_sentiment": (("negative", "positive"), "product and restaurant statements: polarity"),
    "demo_review": (("negative", "positive"), "two-sentence film and book reviews: polarity"),
    "demo_nli": (
        ("entailment", "neutral", "contradiction"),
        "facts about people's belongings: 3-way NLI",
    ),
    "demo_rte": (("entailment", "not_entailment"), "events, companies and moves: 2-way entailment"),
    "demo_topic": (("sports", "food", "weather"), "short news-like sentences: topic"),
}

DEMO_TASKS: dict[str, Task] = {
    name: Task(
        name=name,
        benchmark="demo",
        input_fields=_MAKERS[name][1],
        label_words=label_words,
        metrics=("accuracy",),
        load_records=functools.partial(_load, name),
        description=description,
        source="generated by bmtpt",
        split_rule="own (320/64/64)",
    )
    for name, (label_words, description) in _SPECS.items()
}
"""The demo tasks by name; records are generated on first use and cached."""
