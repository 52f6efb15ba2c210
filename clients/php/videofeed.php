<?php
/**
 * videofeed PHP client, the function form: fetch_feed() for templates that
 * include one file. It is a thin wrapper of \Videofeed\Client (clients/php/src,
 * the Composer package videofeed/client); new code can use the class directly.
 *
 * Dependency-free (PHP 8.1 with the curl extension). It never throws into the
 * template: whenever the service is down, slow, answers an error status or
 * answers garbage, it returns the fallback you chose instead (an empty list
 * unless told otherwise), so a page always renders.
 *
 *   require_once '/path/to/clients/php/videofeed.php';
 *   $videos = fetch_feed('lofi hip hop', 'DE', 12, [
 *       'base_url'   => 'http://127.0.0.1/feed',   // the local URL LiteSpeed routes to videofeed
 *       'timeout_ms' => 400,                       // total time budget, connect included
 *       'fallback'   => fn () => load_trending(),  // or an array; default []
 *   ]);
 *
 * Options:
 *   base_url   string    default 'http://127.0.0.1/feed'
 *   timeout_ms int       default 400 (total, including connect)
 *   fallback   array|callable(Throwable): array   default []
 *   on_error   callable(Throwable): void           called on every failure (logging); default error_log()
 *   logger     a PSR-3 LoggerInterface             failures as warnings (instead of on_error)
 *   params     array     more /feed parameters: offset, channel, min_duration,
 *                        max_duration, sort, highlight (e.g. ['highlight' => 1, 'offset' => 24])
 *
 * Each result is an array with id, title, channel, duration_seconds,
 * thumbnail, region and score (see the README's API section), plus
 * title_highlighted and channel_highlighted with 'params' => ['highlight' => 1]
 * (HTML-escaped, matched words in <mark>: print them as they are).
 *
 * fetch_feed_answer() takes the same arguments and returns the whole answer:
 * results, count, total, total_is_exact, has_more, next (the offset of the next
 * page), corrected (typed word => known word) and relaxed (['dropped' => [...]]
 * when words were dropped to fill the page), plus 'fallback' => true when it is
 * the fallback. A query the feed refuses (400: empty, no letter or digit, too
 * long) is no results and 'error' => ['param' => 'q', 'message' => ...], with no
 * fallback and nothing reported: it is the visitor's input, not an outage.
 *
 *   $answer = fetch_feed_answer('relaxing rain sounds', 'US', 12, ['params' => ['highlight' => 1]]);
 *   if (isset($answer['relaxed'])) { echo 'Showing results without: ' . implode(', ', $answer['relaxed']['dropped']); }
 */

declare(strict_types=1);

// Without Composer's autoloader, load the classes from next to this file.
foreach (['VideofeedException', 'FeedResult', 'Client'] as $videofeed_class) {
    if (!class_exists('Videofeed\\' . $videofeed_class)) {
        require_once __DIR__ . '/src/' . $videofeed_class . '.php';
    }
}
unset($videofeed_class);

if (!function_exists('fetch_feed')) {
    /**
     * The feed results for $query in $region, at most $limit of them, or the fallback.
     *
     * @param array{base_url?: string, timeout_ms?: int, fallback?: array|callable, on_error?: callable, logger?: object, params?: array} $options
     * @return list<array<string, mixed>>
     */
    function fetch_feed(string $query, string $region = 'US', int $limit = 24, array $options = []): array
    {
        return videofeed_page($query, $region, $limit, $options)->results;
    }

    /**
     * The whole /feed answer for $query (results, count, has_more, next, corrected,
     * relaxed), or, on any failure, the fallback's results in the same shape with
     * 'fallback' => true. Never throws.
     *
     * @param array{base_url?: string, timeout_ms?: int, fallback?: array|callable, on_error?: callable, logger?: object, params?: array} $options
     * @return array<string, mixed>
     */
    function fetch_feed_answer(string $query, string $region = 'US', int $limit = 24, array $options = []): array
    {
        return videofeed_page($query, $region, $limit, $options)->toArray();
    }

    /** The page for fetch_feed()/fetch_feed_answer(): their options turned into a Client. Never throws. */
    function videofeed_page(string $query, string $region, int $limit, array $options): \Videofeed\FeedResult
    {
        try {
            $logger = $options['logger'] ?? null;
            $client = new \Videofeed\Client(
                baseUrl: (string) ($options['base_url'] ?? 'http://127.0.0.1/feed'),
                timeoutMs: (int) ($options['timeout_ms'] ?? 400),
                fallback: $options['fallback'] ?? [],
                logger: is_object($logger) ? $logger : null,
                onError: $options['on_error'] ?? null,
            );
            return $client->feed($query, $region, $limit, (array) ($options['params'] ?? []));
        } catch (\Throwable $e) {
            // Only a mistake building the client gets here (a wrong option type).
            error_log('videofeed: ' . $e->getMessage());
            return new \Videofeed\FeedResult($query, $region, [], fromFallback: true, error: $e);
        }
    }
}
