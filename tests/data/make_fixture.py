#!/usr/bin/env python3
"""Writes videos.jsonl, the test fixture corpus (deterministic; re-run to regenerate).

Same line format as shared/bench/gen_corpus.py. ASCII words drawn with
Zipf-like weights so queries hit many rows and ties, plus a few hand-written
rows with accents, CJK, Cyrillic, emoji and punctuation.
"""
import json
import random

WORDS = ("music video live official lofi hip hop chill beats study guitar piano jazz rock "
         "football goals highlights cooking pasta pizza travel tokyo night walk city rain "
         "sleep relax cat dog funny tutorial rust python coding review camera budget "
         "drum bass remix radio summer winter ocean mountain garden").split()
REGIONS = ["US"] * 6 + ["GLOBAL"] * 3 + ["DE"] * 2 + ["GB", "IN", "BR", "FR", "JP"]
CHANNELS = ["Chill Beats", "LofiGirl", "Music Lab", "Rust Daily", "City Walks", "Kitchen Pro",
            "Goal Zone", "Jazz Cafe", "Tech Review", "Night Radio", "Piano Hub", "Funny Pets"]
SPECIAL = [
    ("Café München Walking Tour 4K", "Reise TV", "DE"),
    ("東京 night walk in the rain", "City Walks", "JP"),
    ("Москва music live", "Radio Moskva", "GLOBAL"),
    ("🎵 chill beats to study to 🎵", "LofiGirl", "GLOBAL"),
    ("C++ in 100 seconds", "Rust Daily", "US"),
    ("Don't stop me now (Official Video)", "Queen Official", "GB"),
    ("AC/DC - Back in Black (live)", "AC/DC", "US"),
    ("NEAR AND OR NOT: query words as titles", "Tech Review", "US"),
    ("Piña colada música de verano", "Música Latina", "GLOBAL"),
]


def main():
    rng = random.Random(2)
    weights = [1.0 / (k + 1) for k in range(len(WORDS))]
    rows = []
    for i in range(600):
        n = rng.randint(3, 8)
        title = " ".join(rng.choices(WORDS, weights=weights, k=n))
        if rng.random() < 0.5:
            title = title.title()
        rows.append((title, rng.choice(CHANNELS), rng.choice(REGIONS)))
    rows.extend(SPECIAL)
    with open("videos.jsonl", "w", encoding="utf-8") as out:
        for i, (title, channel, region) in enumerate(rows):
            vid = f"v{i:05d}{rng.randrange(36**5):05d}"[:11]
            out.write(json.dumps({
                "id": vid, "title": title, "channel": channel,
                "duration_seconds": rng.randint(15, 7200),
                "thumbnail": f"https://i.ytimg.com/vi/{vid}/hqdefault.jpg",
                "region": region,
                "published_at": f"20{rng.randint(10, 25)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T08:00:00Z",
                "view_count": rng.randint(0, 10**7),
            }, ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
