"""The ``summaries`` task's texts and their rubrics (written for this task; 12 short news-style
paragraphs, each with the facts a good summary keeps, weighted 1..3)."""

from __future__ import annotations

from typing import Any

__all__ = ["TEXTS", "rubric_data"]

#: ``(text, [(fact, weight), ...])`` in order; dealt train, val, test by position (see the task).
TEXTS: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = (
    (
        "The town council of Eastbrook voted on Tuesday to close the old library on Mill Street. "
        "The building has needed repairs for years. A new library will open in the school "
        "in March. Council members said the move will save 40,000 dollars a year.",
        (
            ("the old library on Mill Street will close", 3.0),
            ("a new library opens in the school in March", 2.0),
            ("the move saves 40,000 dollars a year", 2.0),
        ),
    ),
    (
        "Heavy rain fell across the northern valley for three days. The river rose two metres "
        "and flooded twenty homes near the bridge. No one was hurt. Volunteers handed out "
        "sandbags, and the road to the coast stays closed until Friday.",
        (
            ("heavy rain caused a flood", 3.0),
            ("twenty homes were flooded", 2.0),
            ("no one was hurt", 2.0),
            ("the road to the coast is closed until Friday", 1.0),
        ),
    ),
    (
        "A local bakery, Crumb and Co, won first prize at the national bread fair. Its owner, "
        "Maria Lopez, baked a rye loaf with honey and walnuts. She started the bakery five "
        "years ago in her kitchen. The prize comes with a trip to Paris.",
        (
            ("Crumb and Co won first prize at the national bread fair", 3.0),
            ("the winning bread was a rye loaf with honey and walnuts", 1.0),
            ("the owner is Maria Lopez", 2.0),
            ("the prize includes a trip to Paris", 1.0),
        ),
    ),
    (
        "The city zoo welcomed a baby giraffe on Sunday. The calf is 1.8 metres tall and "
        "healthy. Zoo visitors can vote on her name until the end of the month. The giraffe "
        "house will stay closed for two weeks so mother and calf can rest.",
        (
            ("a baby giraffe was born at the city zoo", 3.0),
            ("visitors can vote on the name", 2.0),
            ("the giraffe house is closed for two weeks", 1.0),
        ),
    ),
    (
        "Engineers finished the new bridge over the Kell river six months early. The bridge "
        "cost 12 million pounds, less than planned. It carries two lanes of traffic and a "
        "cycle path. The old ferry will stop running next week.",
        (
            ("the new bridge over the Kell river is finished", 3.0),
            ("it was finished six months early", 2.0),
            ("it cost 12 million pounds, under budget", 2.0),
            ("the old ferry stops running", 1.0),
        ),
    ),
    (
        "Students at Hillside School raised 8,000 dollars for a new playground by running a "
        "charity marathon. More than 300 pupils took part. The head teacher said the "
        "playground will be built over the summer holidays.",
        (
            ("Hillside School students raised 8,000 dollars", 3.0),
            ("the money is for a new playground", 2.0),
            ("they ran a charity marathon", 1.0),
            ("the playground will be built over the summer", 1.0),
        ),
    ),
    (
        "A power cut left 5,000 homes in the west district without electricity on Monday "
        "night. A fallen tree had damaged a main cable. Repair crews worked through the night "
        "and power came back at six in the morning.",
        (
            ("5,000 homes lost power", 3.0),
            ("a fallen tree damaged a cable", 2.0),
            ("power came back at six in the morning", 2.0),
        ),
    ),
    (
        "The museum of science will open a space exhibition in June. It includes a real moon "
        "rock and a model of the first space station. Tickets go on sale next week, and "
        "children under twelve enter free.",
        (
            ("the science museum opens a space exhibition in June", 3.0),
            ("the exhibition includes a real moon rock", 2.0),
            ("children under twelve enter free", 1.0),
        ),
    ),
    (
        "Farmers in the south report the best apple harvest in ten years. A warm spring and "
        "steady rain helped the trees. Prices in shops are expected to fall by a fifth. Some "
        "farms are hiring extra pickers until October.",
        (
            ("the apple harvest is the best in ten years", 3.0),
            ("a warm spring and steady rain helped", 1.0),
            ("apple prices should fall by a fifth", 2.0),
        ),
    ),
    (
        "The regional hospital opened a new children's ward with forty beds. The ward was paid "
        "for by a donation from a local family. Doctors say waiting times for children should "
        "halve. The old ward will become offices.",
        (
            ("the hospital opened a new children's ward", 3.0),
            ("the ward has forty beds", 1.0),
            ("a local family's donation paid for it", 2.0),
            ("waiting times for children should halve", 2.0),
        ),
    ),
    (
        "A marathon runner from Greenhill, Tom Baker, broke the national record on Sunday. He "
        "finished in two hours and six minutes. Baker trained for a year in the mountains. He "
        "will now compete at the world championships in August.",
        (
            ("Tom Baker broke the national marathon record", 3.0),
            ("he finished in two hours and six minutes", 2.0),
            ("he will compete at the world championships in August", 1.0),
        ),
    ),
    (
        "The ferry company will add a night service between the islands from May. Boats will "
        "leave every two hours after ten in the evening. The company says tourists and "
        "hospital workers asked for the change. Fares stay the same.",
        (
            ("the ferry company adds a night service between the islands", 3.0),
            ("it starts in May", 1.0),
            ("boats leave every two hours in the evening and night", 1.0),
            ("fares stay the same", 2.0),
        ),
    ),
)


def rubric_data(facts: tuple[tuple[str, float], ...]) -> list[dict[str, Any]]:
    """A rubric as JSON data (what ``rubric draft`` writes and the ``rubric`` option reads)."""
    return [{"fact": text, "weight": weight} for text, weight in facts]
