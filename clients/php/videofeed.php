<?php
/**
 * videofeed PHP client: fetch the /feed search results for a template.
 *
 * Dependency-free (PHP 8 with the curl extension). Include it and call
 * fetch_feed(); it never throws into the template. Whenever the service is
 * down, slow, answers an error status or answers garbage, it returns the
 * fallback you chose instead (an empty list unless told otherwise), so a
 * page always renders.
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
 *   params     array     more /feed parameters: offset, channel, min_duration,
 *                        max_duration, sort, highlight (e.g. ['highlight' => 1, 'offset' => 24])
 *
 * Each result is an array with id, title, channel, duration_seconds,
 * thumbnail, region and score (see the README's API section), plus
 * title_highlighted and channel_highlighted with 'params' => ['highlight' => 1]
 * (HTML-escaped, matched words in <mark>: print them as they are).
 *
 * fetch_feed_answer() takes the same arguments and returns the whole answer:
 * results, count, has_more, next (the offset of the next page), corrected
 * (typed word => known word) and relaxed (['dropped' => [...]] when words were
 * dropped to fill the page), plus 'fallback' => true when it is the fallback.
 *
 *   $answer = fetch_feed_answer('relaxing rain sounds', 'US', 12, ['params' => ['highlight' => 1]]);
 *   if (isset($answer['relaxed'])) { echo 'Showing results without: ' . implode(', ', $answer['relaxed']['dropped']); }
 */

declare(strict_types=1);

if (!function_exists('fetch_feed')) {
    /**
     * The feed results for $query in $region, at most $limit of them, or the fallback.
     *
     * @param array{base_url?: string, timeout_ms?: int, fallback?: array|callable, on_error?: callable} $options
     * @return list<array<string, mixed>>
     */
    function fetch_feed(string $query, string $region = 'US', int $limit = 24, array $options = []): array
    {
        try {
            return videofeed_request($query, $region, $limit, $options);
        } catch (Throwable $e) {
            return videofeed_fallback($e, $options);
        }
    }

    /**
     * The whole /feed answer for $query (results, count, has_more, next, corrected,
     * relaxed), or, on any failure, the fallback's results in the same shape with
     * 'fallback' => true. Never throws.
     *
     * @param array{base_url?: string, timeout_ms?: int, fallback?: array|callable, on_error?: callable, params?: array} $options
     * @return array<string, mixed>
     */
    function fetch_feed_answer(string $query, string $region = 'US', int $limit = 24, array $options = []): array
    {
        try {
            return videofeed_answer($query, $region, $limit, $options);
        } catch (Throwable $e) {
            $results = videofeed_fallback($e, $options);
            return [
                'query' => $query, 'region' => $region, 'count' => count($results), 'results' => $results,
                'has_more' => false, 'next' => null, 'truncated' => false, 'fallback' => true,
            ];
        }
    }

    /**
     * The request itself; throws on any failure. Not for templates: use fetch_feed().
     *
     * @return list<array<string, mixed>>
     */
    function videofeed_request(string $query, string $region, int $limit, array $options): array
    {
        return videofeed_answer($query, $region, $limit, $options)['results'];
    }

    /**
     * The decoded answer; throws on any failure. Not for templates: use fetch_feed_answer().
     *
     * @return array<string, mixed>
     */
    function videofeed_answer(string $query, string $region, int $limit, array $options): array
    {
        if (!function_exists('curl_init')) {
            throw new RuntimeException('videofeed: the PHP curl extension is not installed');
        }
        $base = (string) ($options['base_url'] ?? 'http://127.0.0.1/feed');
        $timeout = max(1, (int) ($options['timeout_ms'] ?? 400));
        $params = ['q' => $query, 'region' => $region, 'limit' => $limit];
        $allowed = ['offset', 'channel', 'min_duration', 'max_duration', 'sort', 'highlight'];
        foreach ((array) ($options['params'] ?? []) as $name => $value) {
            if (!in_array($name, $allowed, true)) {
                throw new InvalidArgumentException("videofeed: unknown parameter '$name' (known: " . implode(', ', $allowed) . ')');
            }
            if ($value !== null) {
                $params[$name] = is_bool($value) ? (int) $value : $value;
            }
        }
        $qs = http_build_query($params, '', '&', PHP_QUERY_RFC3986);
        $url = $base . (str_contains($base, '?') ? '&' : '?') . $qs;

        $ch = curl_init($url);
        if ($ch === false) {
            throw new RuntimeException("videofeed: cannot make a request for $url");
        }
        curl_setopt_array($ch, [
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_FAILONERROR => true,           // 4xx and 5xx are failures
            CURLOPT_TIMEOUT_MS => $timeout,        // the whole request, connect included
            CURLOPT_CONNECTTIMEOUT_MS => $timeout,
            CURLOPT_NOSIGNAL => true,              // sub-second timeouts without SIGALRM
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_ENCODING => '',                // accept compressed answers
            CURLOPT_HTTPHEADER => ['Accept: application/json'],
            CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
        ]);
        $body = curl_exec($ch);
        $error = curl_error($ch);
        $status = (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        curl_close($ch);
        if ($body === false || !is_string($body)) {
            throw new RuntimeException("videofeed: $url failed: $error" . ($status ? " (HTTP $status)" : ''));
        }
        $data = json_decode($body, true, 32, JSON_THROW_ON_ERROR);
        if (!is_array($data) || !isset($data['results']) || !is_array($data['results']) || !array_is_list($data['results'])) {
            throw new UnexpectedValueException("videofeed: $url answered JSON without a results list");
        }
        foreach ($data['results'] as $item) {
            if (!is_array($item) || !isset($item['id'], $item['title'])) {
                throw new UnexpectedValueException("videofeed: $url answered a result without id or title");
            }
        }
        return $data;
    }

    /** Reports $e and returns the caller's fallback; never throws. */
    function videofeed_fallback(Throwable $e, array $options): array
    {
        try {
            if (isset($options['on_error']) && is_callable($options['on_error'])) {
                ($options['on_error'])($e);
            } else {
                error_log($e->getMessage());
            }
        } catch (Throwable) {
            // A failing logger must not break the page either.
        }
        $fallback = $options['fallback'] ?? [];
        try {
            $value = is_callable($fallback) ? $fallback($e) : $fallback;
            return is_array($value) ? array_values($value) : [];
        } catch (Throwable) {
            return [];
        }
    }
}
