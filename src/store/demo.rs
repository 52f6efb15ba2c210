//! A deterministic, realistic demo corpus generated straight into the database.
//!
//! Titles are 3 to 10 words drawn from a Zipf-like vocabulary (word k has
//! weight 1/k), some in Title Case, some with a year, an episode number or a
//! "\[4K\]"-style tag, about 5% with accented foreign words; channels follow a
//! Zipf-like popularity; regions are weighted and include `GLOBAL`; durations
//! are mostly minutes with some shorts. The same `--seed` always gives the
//! same rows. The generator is a splitmix64 stream: no external RNG crate.

use crate::store::Video;

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "the", "to", "how", "my", "and", "of", "in", "for", "with", "you", "a", "is", "on", "this", "i", "it", "me",
    "your", "we", "at", "music", "video", "official", "live", "new", "best", "top", "game", "love", "song", "full",
    "episode", "guide", "review", "funny", "world", "day", "night", "mix", "cover", "trailer", "vs", "first", "life",
    "time", "part", "tutorial", "news", "highlights", "lofi", "hip", "hop", "chill", "beats", "study", "relax",
    "sleep", "rain", "piano", "guitar", "jazz", "rock", "metal", "pop", "dance", "party", "remix", "radio",
    "football", "soccer", "goals", "match", "league", "final", "cup", "basketball", "nba", "tennis", "race", "car",
    "cars", "drive", "build", "minecraft", "fortnite", "gameplay", "walkthrough", "speedrun", "challenge", "prank",
    "reaction", "unboxing", "iphone", "android", "camera", "laptop", "pc", "setup", "budget", "cheap", "easy",
    "quick", "recipe", "cooking", "chicken", "pasta", "pizza", "cake", "bread", "vegan", "breakfast", "dinner",
    "travel", "city", "tour", "walk", "beach", "mountain", "hiking", "camping", "ocean", "island", "summer",
    "winter", "christmas", "holiday", "family", "kids", "baby", "cat", "cats", "dog", "dogs", "animals", "wild",
    "nature", "space", "science", "history", "documentary", "explained", "facts", "secret", "hidden", "ancient",
    "future", "technology", "ai", "robot", "coding", "python", "rust", "javascript", "linux", "programming",
    "course", "beginners", "advanced", "lesson", "learn", "english", "spanish", "workout", "fitness", "yoga",
    "running", "diet", "health", "morning", "routine", "vlog", "story", "stories", "horror", "scary", "ghost",
    "movie", "movies", "film", "scene", "comedy", "stand", "up", "podcast", "interview", "talk", "show", "late",
    "album", "acoustic", "concert", "festival", "orchestra", "classical", "symphony", "violin", "drum", "bass",
    "house", "techno", "ambient", "soundtrack", "anime", "opening", "ending", "manga", "art", "drawing", "painting",
    "diy", "home", "garden", "tiny", "room", "makeover", "fashion", "makeup", "hair", "style", "wedding", "dream",
    "fire", "water", "gold", "dark", "light", "blue", "red", "green", "black", "white", "old", "young",
];

#[rustfmt::skip]
const FOREIGN: &[&str] = &[
    "café", "München", "niño", "canción", "música", "façade", "crème", "brûlée", "Zürich", "São", "Paulo", "fútbol",
    "été", "noël", "smörgåsbord", "Kraków", "naïve", "jalapeño", "Ålesund", "Straße", "über", "Москва", "東京",
];

const DECOR: &[&str] = &["(Official Video)", "[4K]", "[HD]", "#shorts", "(Lyrics)", "- Live", "| Full Episode", "!!"];
const SUFFIX: &[&str] = &["TV", "Official", "Gaming", "Music", "Vlogs", "Studio", "Channel", "News", "Kids", "Tech"];
#[rustfmt::skip]
const REGIONS: &[(&str, u32)] = &[
    ("US", 30), ("GLOBAL", 15), ("GB", 8), ("IN", 8), ("DE", 6), ("BR", 6), ("FR", 5), ("JP", 5), ("MX", 4),
    ("CA", 4), ("ES", 3), ("ID", 3), ("TR", 2), ("NG", 1),
];

/// A splitmix64 random stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        let n64 = u64::try_from(n).unwrap_or(u64::MAX).max(1);
        usize::try_from(self.next() % n64).unwrap_or(0)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index in `0..n` with weight 1/(k+1)^s, by inverting the cumulative weights.
    fn zipf(&mut self, cumulative: &[f64]) -> usize {
        let total = cumulative.last().copied().unwrap_or(1.0);
        let x = self.unit() * total;
        cumulative.partition_point(|c| *c < x).min(cumulative.len().saturating_sub(1))
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len())).copied().unwrap_or("video")
    }
}

fn cumulative(n: usize, s: f64) -> Vec<f64> {
    let mut acc = 0.0;
    (0..n)
        .map(|k| {
            acc += 1.0 / ((k + 1) as f64).powf(s);
            acc
        })
        .collect()
}

fn capitalize(w: &str) -> String {
    let mut c = w.chars();
    c.next().map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

/// An 11-character URL-safe id, unique for each (index, seed) like YouTube's.
fn video_id(i: u64, seed: u64) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x = Rng(i ^ seed.wrapping_mul(0x0100_0000_01B3)).next();
    (0..11)
        .map(|_| {
            let c = ALPHABET.get(usize::try_from(x & 63).unwrap_or(0)).copied().unwrap_or(b'A');
            x >>= 6;
            char::from(c)
        })
        .collect()
}

/// Generates `count` videos for `seed`, lazily.
pub fn videos(count: u64, seed: u64) -> impl Iterator<Item = Video> {
    let mut rng = Rng(seed);
    let word_cum = cumulative(WORDS.len(), 1.0);
    let channels: Vec<String> = (0..2000)
        .map(|_| {
            let a = capitalize(rng.pick(WORDS));
            let b = capitalize(rng.pick(WORDS));
            match rng.below(4) {
                0 => format!("{a}{b}"),
                1 => format!("{a} {b}"),
                2 => format!("{a} {}", rng.pick(SUFFIX)),
                _ => format!("{}{}", a.to_lowercase(), 1 + rng.below(999)),
            }
        })
        .collect();
    let channel_cum = cumulative(channels.len(), 0.8);
    let region_cum: Vec<f64> = REGIONS
        .iter()
        .scan(0.0, |acc, (_, w)| {
            *acc += f64::from(*w);
            Some(*acc)
        })
        .collect();

    (0..count).map(move |i| {
        let n = 3 + rng.below(8);
        let mut words: Vec<String> =
            (0..n).map(|_| WORDS.get(rng.zipf(&word_cum)).copied().unwrap_or("video").to_owned()).collect();
        if rng.below(20) == 0 {
            let k = rng.below(n);
            if let Some(w) = words.get_mut(k) {
                *w = rng.pick(FOREIGN).to_owned();
            }
        }
        let style = rng.below(10);
        let mut title = match style {
            0..=4 => words.iter().map(|w| capitalize(w)).collect::<Vec<_>>().join(" "),
            5..=8 => capitalize(&words.join(" ")),
            _ => words.join(" "),
        };
        match rng.below(10) {
            0 => title = format!("{title} {}", 2008 + rng.below(18)),
            1 => title = format!("Part {} {title}", 1 + rng.below(20)),
            _ => {}
        }
        if rng.below(7) == 0 {
            title = format!("{title} {}", rng.pick(DECOR));
        }
        let channel = channels.get(rng.zipf(&channel_cum)).cloned().unwrap_or_default();
        let region = REGIONS.get(rng.zipf(&region_cum).min(REGIONS.len() - 1)).map_or("US", |(r, _)| r);
        // zipf() on plain cumulative weights is a weighted pick.
        let duration_seconds = if rng.below(8) == 0 {
            15 + i64::try_from(rng.below(46)).unwrap_or(0)
        } else {
            let minutes = (-(1.0 - rng.unit()).ln() * 9.0).min(180.0);
            60 + (minutes * 60.0) as i64
        };
        let id = video_id(i, seed);
        let days = rng.below(17 * 365);
        let (y, rest) = (2008 + days / 365, days % 365);
        Video {
            thumbnail: format!("https://i.ytimg.com/vi/{id}/hqdefault.jpg"),
            id,
            title,
            channel,
            duration_seconds,
            region: region.to_owned(),
            published_at: Some(format!("{y:04}-{:02}-{:02}T12:00:00Z", 1 + rest / 31 % 12, 1 + rest % 28)),
            view_count: (rng.unit().powi(4) * 10_000_000.0) as i64,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_rows_and_ids_unique() {
        let a: Vec<Video> = videos(500, 7).collect();
        let b: Vec<Video> = videos(500, 7).collect();
        assert_eq!(a, b);
        let c: Vec<Video> = videos(500, 8).collect();
        assert_ne!(a, c);
        let mut ids: Vec<&str> = a.iter().map(|v| v.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 500);
    }

    #[test]
    fn rows_are_valid_import_rows_with_global_region() {
        let rows: Vec<Video> = videos(2000, 1).collect();
        assert!(rows.iter().any(|v| v.region == "GLOBAL"));
        for v in &rows {
            assert_eq!(crate::store::parse_line(&v.to_json_line()).as_ref(), Ok(v));
        }
        // Zipf: the most common word appears far more often than a rare one.
        let count = |w: &str| rows.iter().filter(|v| v.title.to_lowercase().split(' ').any(|t| t == w)).count();
        assert!(count("the") > 5 * count("young").max(1));
    }
}
