#!/usr/bin/env python3
"""Deterministic multilingual video corpus and judged queries (issue 34).

  python3 bench/gen_multilingual.py --count 20000 --seed 3 --out videos.jsonl --queries judged.jsonl

Titles in Japanese, Chinese, Korean, Thai, Arabic, Hebrew, Russian, Hindi,
Vietnamese, German and English, built from real word lists that packages ship:
`wordfreq` (frequency-ranked words of every language here but Thai) and
`pythainlp` (its Thai word list). Japanese, Chinese and Thai titles are written
as those languages are, without spaces between words; Korean titles attach
particles to nouns (고양이가); some Arabic titles are vocalised (harakat) or
stretched (tatweel), some Hebrew titles pointed (niqqud); German titles keep
their ß. The corpus lines have the format of ../shared/bench/gen_corpus.py (the
import format).

--queries writes judged queries, one JSON object a line:
  {"script": "ja", "kind": "inner", "q": "...", "region": "JP", "expect": "<id>"}
kinds: `exact` (two of the title's rarer words, separated by a space),
`inner` (unspaced scripts and Korean: words that do not start the title or
its token, e.g. ヒップホップ in ローファイヒップホップ, 고양이 in 고양이가),
`folded` (the same words in another form: plain Arabic for a vocalised title
and the reverse, unpointed Hebrew, `ss` for `ß`, half-width katakana),
`typo` (spaced scripts: one letter of the longest word, 5+ letters, replaced).
A query is answered right when `expect`, or a video with the very same title,
is in the first 10 results (region filter as given).
"""
import argparse
import base64
import json
import random
import unicodedata

import wordfreq

MASK64 = (1 << 64) - 1

# language: (region, unspaced, wordfreq list or None for Thai)
LANGS = {
    "ja": ("JP", True),
    "zh": ("CN", True),
    "th": ("TH", True),
    "ko": ("KR", False),
    "ar": ("SA", False),
    "he": ("IL", False),
    "ru": ("RU", False),
    "hi": ("IN", False),
    "vi": ("VN", False),
    "de": ("DE", False),
    "en": ("US", False),
}
KO_PARTICLES = ["가", "이", "는", "은", "를", "을", "의", "에서", "와", "로"]
HARAKAT = ["\u064e", "\u064f", "\u0650", "\u0652", "\u064b"]
NIQQUD = ["\u05b0", "\u05b4", "\u05b7", "\u05b8", "\u05b6", "\u05b5", "\u05bc"]


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def video_id(i, seed):
    # Far from gen_corpus.py's ids of any seed (i + seed * K): no collision when both are imported.
    v = splitmix64((i + (seed + 1000) * 0x100000001B3) & MASK64)
    return base64.urlsafe_b64encode(v.to_bytes(8, "big")).decode()[:11]


def letters_only(w):
    return all(unicodedata.category(c)[0] in "LM" for c in w)


# The script every word of a language must be written in (wordfreq's lists hold
# some English words in every language).
SCRIPTS = {"ja": ("CJK", "HIRAGANA", "KATAKANA"), "zh": ("CJK",), "ko": ("HANGUL",), "ar": ("ARABIC",),
           "he": ("HEBREW",), "ru": ("CYRILLIC",), "hi": ("DEVANAGARI",), "th": ("THAI",)}


def in_script(lang, w):
    names = SCRIPTS.get(lang)
    return names is None or all(unicodedata.name(c, "").startswith(names) for c in w)


# wordfreq writes German `ß` as `ss`: put it back where German spelling has it
# (after a diphthong, and in these words with a long vowel).
ESZETT_WORDS = {"gross": "groß", "grosse": "große", "grossen": "großen", "grosser": "großer", "grosses": "großes",
                "spass": "spaß", "fuss": "fuß", "gruss": "gruß", "gruesse": "grüße", "suess": "süß",
                "gemaess": "gemäß", "mass": "maß", "strasse": "straße", "strassen": "straßen"}


def eszett(w):
    import re
    return ESZETT_WORDS.get(w) or re.sub(r"(ei|ie|au|eu|äu)ss", r"\1ß", w)


def vocabulary(lang, n):
    """Words of `lang`, most frequent first, without the 150 commonest (function words)."""
    if lang == "th":
        from pythainlp.corpus.common import thai_words
        words = sorted(w for w in thai_words() if 3 <= len(w) <= 8 and letters_only(w))
        random.Random(11).shuffle(words)
        return words[:n]
    min_len = 2 if LANGS[lang][1] else 3
    words = [w for w in wordfreq.top_n_list(lang, n * 3)
             if len(w) >= min_len and letters_only(w) and in_script(lang, w)]
    if lang == "de":
        words = [eszett(w) for w in words]
    return words[150:150 + n]


def vocalise(word, rng, marks):
    return "".join(c + (rng.choice(marks) if rng.random() < 0.6 else "") for c in word)


def halfwidth(word):
    """Katakana in half-width forms (what NFKC folds back), or None when not katakana."""
    if not word or not all("\u30a1" <= c <= "\u30f6" or c == "\u30fc" for c in word):
        return None
    out = []
    for c in word:
        d = unicodedata.normalize("NFD", c)
        base = d[0]
        hw = {v: k for k, v in HALF.items()}.get(base)
        if hw is None:
            return None
        out.append(hw + ("\uff9e" if "\u3099" in d else "\uff9f" if "\u309a" in d else ""))
    return "".join(out)


# Half-width katakana (U+FF66..U+FF9D) and what NFKC makes of each.
HALF = {chr(c): unicodedata.normalize("NFKC", chr(c)) for c in range(0xFF66, 0xFF9E)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--vocabulary", type=int, default=4000, help="words per language")
    ap.add_argument("--out", required=True)
    ap.add_argument("--queries", help="judged queries (JSON Lines)")
    ap.add_argument("--per-kind", type=int, default=200, help="judged queries per script and kind")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    vocab = {lang: vocabulary(lang, a.vocabulary) for lang in LANGS}
    weights = {lang: [1.0 / (k + 20) for k in range(len(vocab[lang]))] for lang in LANGS}
    rank = {lang: {w: k for k, w in enumerate(vocab[lang])} for lang in LANGS}
    langs = list(LANGS)
    titles = {}
    judged = {lang: [] for lang in LANGS}
    with open(a.out, "w", encoding="utf-8") as out:
        for i in range(a.count):
            lang = langs[i % len(langs)]
            region, unspaced = LANGS[lang]
            n = rng.randint(3, 7)
            words = rng.choices(vocab[lang], weights=weights[lang], k=n)
            shown = list(words)
            form = "plain"
            if lang == "ko":
                k = rng.randrange(n)
                shown[k] = words[k] + rng.choice(KO_PARTICLES)
                form = f"particle:{k}"
            elif lang == "ar" and rng.random() < 0.4:
                if rng.random() < 0.75:
                    shown = [vocalise(w, rng, HARAKAT) for w in words]
                    form = "vocalised"
                else:
                    shown = [w[:1] + "\u0640" + w[1:] if len(w) > 2 else w for w in words]
                    form = "tatweel"
            elif lang == "he" and rng.random() < 0.4:
                shown = [vocalise(w, rng, NIQQUD) for w in words]
                form = "pointed"
            if unspaced:
                title = "".join(shown)
                if lang == "ja" and rng.random() < 0.3:
                    title = "【" + rng.choice(["作業用BGM", "公式", "MV", "ライブ"]) + "】" + title
                if rng.random() < 0.2:
                    title += f" {rng.randint(1, 12)}" + {"ja": "時間", "zh": "小时", "th": " ชั่วโมง"}[lang]
            else:
                title = " ".join(shown)
                if lang in ("de", "en", "vi", "ru") and rng.random() < 0.5:
                    title = title[:1].upper() + title[1:]
            vid = video_id(i, a.seed)
            titles[vid] = title
            print(json.dumps({
                "id": vid,
                "title": title,
                "channel": f"{region} Channel {rng.randint(1, 300)}",
                "duration_seconds": rng.randint(30, 7200),
                "thumbnail": f"https://i.ytimg.com/vi/{vid}/hqdefault.jpg",
                "region": region,
                "published_at": "2025-01-01T00:00:00Z",
                "view_count": rng.randint(0, 10**7),
            }, ensure_ascii=False), file=out)
            judged[lang].append((vid, words, shown, form))
    if not a.queries:
        return
    with open(a.queries, "w", encoding="utf-8") as qf:
        def emit(lang, kind, q, vid):
            print(json.dumps({"script": lang, "kind": kind, "q": q, "region": LANGS[lang][0], "expect": vid},
                             ensure_ascii=False), file=qf)

        for lang, videos in judged.items():
            unspaced = LANGS[lang][1]
            counts = {}

            def room(kind):
                return counts.get(kind, 0) < a.per_kind

            def used(kind):
                counts[kind] = counts.get(kind, 0) + 1

            for vid, words, shown, form in rng.sample(videos, len(videos)):
                order = sorted(range(len(words)), key=lambda k: -rank[lang][words[k]])
                two = sorted(order[:2])
                if room("exact") and len(set(words[k] for k in two)) == 2:
                    emit(lang, "exact", " ".join(words[k] for k in two), vid)
                    used("exact")
                if unspaced and room("inner"):
                    inner = [k for k in order if k > 0][:2]
                    if inner:
                        emit(lang, "inner", " ".join(words[k] for k in sorted(inner)), vid)
                        used("inner")
                if lang == "ko" and room("inner"):
                    # The noun that carries a particle, with the title's rarest other word.
                    k = int(form.split(":")[1])
                    other = next((j for j in order if j != k), None)
                    if other is not None and words[other] != words[k]:
                        emit(lang, "inner", " ".join([words[k], words[other]]), vid)
                        used("inner")
                if room("folded"):
                    q = None
                    if lang == "ar" and form in ("vocalised", "tatweel"):
                        q = " ".join(words[k] for k in two)
                    elif lang == "ar" and form == "plain":
                        q = " ".join(vocalise(words[k], rng, HARAKAT) for k in two)
                    elif lang == "he" and form == "pointed":
                        q = " ".join(words[k] for k in two)
                    elif lang == "he":
                        q = " ".join(vocalise(words[k], rng, NIQQUD) for k in two)
                    elif lang == "de" and any("ß" in w for w in words):
                        k = next(k for k, w in enumerate(words) if "ß" in w)
                        other = next((j for j in order if j != k), None)
                        q = " ".join(w.replace("ß", "ss") for w in [words[k]] + ([words[other]] if other is not None else []))
                    elif lang == "ja":
                        hw = [halfwidth(w) for w in words]
                        k = next((k for k, h in enumerate(hw) if h and rank[lang][words[k]] > 300), None)
                        if k is not None:
                            q = hw[k]
                    if q:
                        emit(lang, "folded", q, vid)
                        used("folded")
                if not unspaced and lang != "ko" and room("typo"):
                    longest = max(range(len(words)), key=lambda k: len(words[k]))
                    w = words[longest]
                    if len(w) >= 5:
                        p = rng.randrange(1, len(w) - 1)
                        c = rng.choice([x for x in w if x != w[p]] or [w[p]])
                        typo = w[:p] + c + w[p + 1:]
                        other = next((j for j in order if j != longest), None)
                        q = typo if other is None else " ".join([typo, words[other]])
                        if typo != w:
                            emit(lang, "typo", q, vid)
                            used("typo")
                if all(not room(k) for k in ("exact", "inner", "folded", "typo")):
                    break


if __name__ == "__main__":
    main()
