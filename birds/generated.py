"""Plausible made-up birds for demos and load tests: "Chestnut-sided Warbler", "Setophaga Pensylvanica"."""
import itertools
import random
from collections.abc import Iterator

# Each group of birds with the genus its species get.
GROUPS = [
    ("Warbler", "Setophaga"), ("Sparrow", "Melospiza"), ("Flycatcher", "Empidonax"), ("Thrush", "Catharus"),
    ("Wren", "Thryothorus"), ("Vireo", "Vireo"), ("Finch", "Haemorhous"), ("Tanager", "Piranga"),
    ("Woodpecker", "Melanerpes"), ("Hummingbird", "Archilochus"), ("Kingfisher", "Megaceryle"),
    ("Heron", "Ardea"), ("Owl", "Strix"), ("Hawk", "Buteo"), ("Falcon", "Falco"), ("Swallow", "Tachycineta"),
    ("Oriole", "Icterus"), ("Grosbeak", "Pheucticus"), ("Bunting", "Passerina"), ("Nuthatch", "Sitta"),
    ("Chickadee", "Poecile"), ("Plover", "Charadrius"), ("Sandpiper", "Calidris"), ("Tern", "Sterna"),
    ("Gull", "Larus"), ("Duck", "Anas"), ("Goose", "Anser"), ("Dove", "Zenaida"), ("Jay", "Cyanocitta"),
    ("Kinglet", "Regulus"), ("Pipit", "Anthus"), ("Lark", "Eremophila"),
]
MODIFIERS = [
    "Black-capped", "Chestnut-sided", "Yellow-rumped", "Red-eyed", "White-throated", "Golden-crowned",
    "Ruby-throated", "Blue-winged", "Rufous", "Cerulean", "Olive-sided", "Grey-cheeked", "Hermit", "Swainson's",
    "Bewick's", "Carolina", "Northern", "Eastern", "Western", "Mountain", "Prairie", "Marsh", "Great", "Lesser",
    "Least", "Spotted", "Streaked", "Crested", "Sooty", "Scarlet", "Summer", "Dusky", "Pine", "Cassin's",
    "Lincoln's", "Hooded", "Painted", "Pied-billed", "Long-billed", "Short-eared",
]
EPITHETS = [
    "Pensylvanica", "Coronata", "Olivaceus", "Albicollis", "Satrapa", "Colubris", "Cyanoptera", "Rufus",
    "Cerulea", "Borealis", "Minimus", "Guttatus", "Ustulatus", "Bewickii", "Ludovicianus", "Septentrionalis",
    "Orientalis", "Occidentalis", "Montanus", "Discolor", "Palustris", "Major", "Minor", "Pusillus", "Maculatus",
    "Striatus", "Cristatus", "Fuliginosus", "Coccineus", "Aestiva", "Obscurus", "Pinus", "Cassinii",
    "Lincolnii", "Citrina", "Ciris", "Podiceps", "Longirostris", "Flammeus", "Melodia",
]


def generated_birds(count: int) -> Iterator[tuple[str, str]]:
    """count (name, species) pairs, the same ones on every run, neighbours unlike each other."""
    pool = [
        (f"{modifier} {group}", f"{genus} {EPITHETS[(index * 7 + position) % len(EPITHETS)]}")
        for position, (group, genus) in enumerate(GROUPS)
        for index, modifier in enumerate(MODIFIERS)
    ]
    # A fixed seed: reruns (and benchmarks) load the same birds. Nothing secret depends on it.
    random.Random(9).shuffle(pool)  # noqa: S311
    return itertools.islice(itertools.cycle(pool), count)
