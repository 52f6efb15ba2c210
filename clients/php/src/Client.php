<?php

declare(strict_types=1);

namespace Videofeed;

/**
 * The videofeed client for PHP templates and tools.
 *
 * Reads (search(), feed(), pages(), browse()) never throw into a template. A
 * query the feed refuses (400 or 422: an empty box, an emoji-only query, over
 * 120 characters) is a FeedResult with no results and ->error set, and nothing
 * is logged: it is the visitor's input, not an outage. Any other failure
 * (nothing listening, a timeout, a 5xx, another 4xx such as a wrong base URL,
 * malformed JSON, a mistake in the call) is reported (the PSR-3 logger as a
 * warning, else the onError callable, else error_log()) and answered with the
 * fallback, within the time budget (400 ms by default, connect included).
 * Messages name the path, never the query text, unless logQueries is true.
 * Build the client with throwOnError: true to get a VideofeedException
 * (carrying the server's reason) for every failure instead.
 *
 * get(), upsert(), patch(), delete() and deleteMany() are for operators'
 * tools: they need the admin token and throw a VideofeedException on failure
 * (a 422 carries the rejected lines in ->answer).
 *
 *   $feed = new \Videofeed\Client('http://127.0.0.1/feed', fallback: fn () => $trending);
 *   $page = $feed->search('lofi hip hop', region: 'DE', limit: 12, sort: 'recent', highlight: true);
 *   foreach ($page->results as $video) { ... }
 *   if ($page->hasMore) { $nextOffset = $page->next; }
 */
final class Client
{
    /** The /feed parameters besides q, region and limit (see the OpenAPI document). */
    public const PARAMETERS = ['offset', 'channel', 'min_duration', 'max_duration', 'sort', 'highlight'];

    /**
     * @param string $baseUrl the /feed URL the web server routes to videofeed
     * @param int $timeoutMs the whole request's budget for reads, connect included
     * @param array<mixed>|callable(\Throwable): array<mixed> $fallback the results shown when a read fails
     * @param object|null $logger a PSR-3 LoggerInterface (warning() is called with the failure)
     * @param string|null $token the admin token, for upsert() and delete()
     * @param bool $throwOnError reads throw VideofeedException instead of returning the fallback
     * @param callable(\Throwable): void|null $onError called on every read failure when there is no logger
     * @param int $writeTimeoutMs the budget of a write (a large batch takes longer than a read)
     * @param bool $logQueries failure messages carry the whole URL, query text included (default: the path only)
     */
    public function __construct(
        private readonly string $baseUrl = 'http://127.0.0.1/feed',
        private readonly int $timeoutMs = 400,
        private readonly mixed $fallback = [],
        private readonly ?object $logger = null,
        private readonly ?string $token = null,
        private readonly bool $throwOnError = false,
        private readonly mixed $onError = null,
        private readonly int $writeTimeoutMs = 10000,
        private readonly bool $logQueries = false,
    ) {
    }

    /**
     * One page of the feed, every parameter named.
     *
     * @param string|null $sort relevance (default), recent or popular
     */
    public function search(
        string $q,
        string $region = 'US',
        int $limit = 24,
        int $offset = 0,
        ?string $channel = null,
        ?int $minDuration = null,
        ?int $maxDuration = null,
        ?string $sort = null,
        bool $highlight = false,
    ): FeedResult {
        return $this->feed($q, $region, $limit, [
            'offset' => $offset ?: null,
            'channel' => $channel,
            'min_duration' => $minDuration,
            'max_duration' => $maxDuration,
            'sort' => $sort,
            'highlight' => $highlight ? 1 : null,
        ]);
    }

    /**
     * One page of the feed, the extra parameters as an array (names as in the URL:
     * offset, channel, min_duration, max_duration, sort, highlight; null = not sent).
     *
     * @param array<string, scalar|null> $params
     */
    public function feed(string $q, string $region = 'US', int $limit = 24, array $params = []): FeedResult
    {
        try {
            return FeedResult::fromAnswer($this->read($q, $region, $limit, $params));
        } catch (\Throwable $e) {
            if ($this->throwOnError) {
                throw $e instanceof VideofeedException ? $e : new VideofeedException($e->getMessage(), 0, null, $e);
            }
            if ($e instanceof VideofeedException && in_array($e->status, [400, 422], true)) {
                // The visitor's input (an empty box, an emoji, too long): no results, no fallback, no log.
                return new FeedResult(query: $q, region: $region, results: [], error: $e);
            }
            return new FeedResult(
                query: $q,
                region: $region,
                results: $this->fallbackFor($e),
                fromFallback: true,
                error: $e,
            );
        }
    }

    /**
     * Browsing without a query: the newest or most viewed videos of a region
     * (`/feed?region=DE&sort=popular`) or of a channel (`?channel=Lofi%20Girl&sort=recent`);
     * region GLOBAL is the videos shown everywhere. A page's "trending" block, and
     * what a search's fallback can show (keep a copy of it).
     *
     * @param string $sort recent or popular (relevance needs a query)
     * @param array<string, scalar|null> $params offset, min_duration, max_duration, highlight
     */
    public function browse(
        string $region = 'US',
        string $sort = 'popular',
        ?string $channel = null,
        int $limit = 24,
        array $params = [],
    ): FeedResult {
        return $this->feed('', $region, $limit, ['sort' => $sort, 'channel' => $channel] + $params);
    }

    /**
     * Every page of a query, first to last (at most $maxPages), following
     * has_more and next; stops at the first failure (that page is the fallback).
     *
     * @param array<string, scalar|null> $params
     * @return \Generator<int, FeedResult>
     */
    public function pages(string $q, string $region = 'US', int $limit = 24, array $params = [], int $maxPages = 50): \Generator
    {
        $offset = (int) ($params['offset'] ?? 0);
        for ($n = 0; $n < $maxPages; $n++) {
            $page = $this->feed($q, $region, $limit, ['offset' => $offset ?: null] + $params);
            yield $n => $page;
            if ($page->fromFallback || !$page->hasMore || $page->next === null) {
                return;
            }
            $offset = $page->next;
        }
    }

    /**
     * Inserts or updates videos (by id) in one all-or-nothing batch.
     *
     * @param list<array<string, mixed>> $videos rows in the import format (id, title, channel,
     *        duration_seconds, thumbnail, region, optional published_at and view_count)
     * @return array<string, mixed> the answer: accepted, inserted, updated, unchanged, commit_ms, …
     * @throws VideofeedException on any failure (->status, and ->answer with `rejected` for a 422)
     */
    public function upsert(array $videos): array
    {
        if ($videos === []) {
            throw new VideofeedException('videofeed: upsert() needs at least one video');
        }
        $lines = [];
        foreach ($videos as $i => $video) {
            if (!is_array($video)) {
                throw new VideofeedException("videofeed: video $i is not an array");
            }
            $lines[] = json_encode($video, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
        }
        return $this->write('POST', '/admin/videos', implode("\n", $lines) . "\n");
    }

    /**
     * The stored video, every field (id, title, channel, duration_seconds,
     * thumbnail, region, published_at, view_count); null when there is none.
     *
     * @return array<string, mixed>|null
     * @throws VideofeedException on any other failure
     */
    public function get(string $id): ?array
    {
        try {
            return $this->write('GET', '/admin/videos/' . rawurlencode($id), '');
        } catch (VideofeedException $e) {
            if ($e->status === 404 && ($e->answer['error']['param'] ?? null) === 'id') {
                return null;
            }
            throw $e;
        }
    }

    /**
     * Changes some fields of one video (`['view_count' => 1200000]`); the others
     * keep their stored value. `null` clears published_at (view_count: 0).
     *
     * @param array<string, mixed> $fields
     * @return array<string, mixed> the answer (`updated` 1, or `unchanged` 1)
     * @throws VideofeedException on any failure (404: no such video; 422: ->answer names the field)
     */
    public function patch(string $id, array $fields): array
    {
        if ($fields === []) {
            throw new VideofeedException('videofeed: patch() needs at least one field to change');
        }
        $body = json_encode((object) $fields, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
        return $this->write('PATCH', '/admin/videos/' . rawurlencode($id), $body, 'application/json');
    }

    /**
     * Deletes many videos in one transaction (all or none).
     *
     * @param list<string> $ids 1 to 10,000 distinct ids
     * @return array<string, mixed> the answer: `deleted`, and `results` with one
     *         ['id' => …, 'result' => 'deleted'|'not_found'] per id
     * @throws VideofeedException on any failure (422: a bad or repeated id, nothing deleted)
     */
    public function deleteMany(array $ids): array
    {
        if ($ids === []) {
            throw new VideofeedException('videofeed: deleteMany() needs at least one id');
        }
        $body = json_encode(['ids' => array_values($ids)], JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
        return $this->write('POST', '/admin/videos/delete', $body, 'application/json');
    }

    /**
     * Deletes one video.
     *
     * @return array<string, mixed> the answer (`deleted` is 1)
     * @throws VideofeedException on any failure (status 404 when there is no such video)
     */
    public function delete(string $id): array
    {
        return $this->write('DELETE', '/admin/videos/' . rawurlencode($id), '');
    }

    /**
     * The decoded answer of one read; throws on any failure.
     *
     * @param array<string, scalar|null> $params
     * @return array<string, mixed>
     */
    private function read(string $q, string $region, int $limit, array $params): array
    {
        $query = ['q' => $q, 'region' => $region, 'limit' => $limit];
        foreach ($params as $name => $value) {
            if (!in_array($name, self::PARAMETERS, true)) {
                throw new \InvalidArgumentException(
                    "videofeed: unknown parameter '$name' (known: " . implode(', ', self::PARAMETERS) . ')'
                );
            }
            if ($value !== null) {
                $query[$name] = is_bool($value) ? (int) $value : $value;
            }
        }
        if ($query['q'] === '') {
            unset($query['q']);   // browsing: sort or channel instead of a query
        }
        $url = $this->baseUrl . (str_contains($this->baseUrl, '?') ? '&' : '?')
            . http_build_query($query, '', '&', PHP_QUERY_RFC3986);
        // What messages name: the path, not the visitor's query text (unless logQueries).
        $shown = $this->logQueries ? $url : self::withoutQuery($this->baseUrl);
        [$status, $body] = $this->http('GET', $url, null, [], max(1, $this->timeoutMs), $shown);
        if ($status >= 400) {
            $answer = self::decodeOrNull($body);
            throw new VideofeedException("videofeed: GET $shown answered HTTP $status" . self::reason($answer), $status, $answer);
        }
        try {
            $data = json_decode($body, true, 32, JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new VideofeedException("videofeed: GET $shown answered malformed JSON: " . $e->getMessage(), $status, null, $e);
        }
        if (!is_array($data)) {
            throw new VideofeedException("videofeed: GET $shown answered JSON that is not an object", $status);
        }
        return $data;
    }

    /**
     * One write request with the token; the decoded answer of a 2xx, else an exception.
     *
     * @return array<string, mixed>
     */
    private function write(string $method, string $path, string $body, string $type = 'application/x-ndjson'): array
    {
        if ($this->token === null || $this->token === '') {
            throw new VideofeedException('videofeed: writes need the admin token (new Client(token: …))');
        }
        $url = rtrim($this->baseUrl, '/') . $path;
        $headers = ['Authorization: Bearer ' . $this->token, "Content-Type: $type"];
        [$status, $text] = $this->http($method, $url, $body === '' ? null : $body, $headers, max(1, $this->writeTimeoutMs), $url);
        $answer = self::decodeOrNull($text);
        if ($status < 200 || $status >= 300 || $answer === null) {
            throw new VideofeedException("videofeed: $method $url answered HTTP $status" . self::reason($answer), $status, $answer);
        }
        return $answer;
    }

    /**
     * One HTTP exchange with curl: [status, body]; throws when there is no answer.
     *
     * @param list<string> $headers
     * @param string $shown what a message calls the URL
     * @return array{0: int, 1: string}
     */
    private function http(string $method, string $url, ?string $body, array $headers, int $timeoutMs, string $shown): array
    {
        if (!function_exists('curl_init')) {
            throw new VideofeedException('videofeed: the PHP curl extension is not installed');
        }
        $ch = curl_init($url);
        if ($ch === false) {
            throw new VideofeedException("videofeed: cannot make a request for $shown");
        }
        $options = [
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_TIMEOUT_MS => $timeoutMs,         // the whole request, connect included
            CURLOPT_CONNECTTIMEOUT_MS => $timeoutMs,
            CURLOPT_NOSIGNAL => true,                 // sub-second timeouts without SIGALRM
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_ENCODING => '',                   // accept compressed answers
            CURLOPT_HTTPHEADER => array_merge(['Accept: application/json'], $headers),
            CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
        ];
        if ($body !== null) {
            $options[CURLOPT_POSTFIELDS] = $body;
        }
        curl_setopt_array($ch, $options);
        $text = curl_exec($ch);
        $error = curl_error($ch);
        $status = (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        curl_close($ch);
        if (!is_string($text)) {
            throw new VideofeedException("videofeed: $method $shown failed: $error", $status);
        }
        return [$status, $text];
    }

    /** $url without its query string. */
    private static function withoutQuery(string $url): string
    {
        $cut = strpos($url, '?');
        return $cut === false ? $url : substr($url, 0, $cut);
    }

    /**
     * The server's reason from an error answer, as the end of a message:
     * ": q must hold a letter or digit (q)", or '' when there is none.
     *
     * @param array<string, mixed>|null $answer
     */
    private static function reason(?array $answer): string
    {
        $message = $answer['error']['message'] ?? null;
        if (!is_string($message) || $message === '') {
            return '';
        }
        $param = $answer['error']['param'] ?? null;
        return ': ' . $message . (is_string($param) ? " ($param)" : '');
    }

    /** @return array<string, mixed>|null */
    private static function decodeOrNull(string $text): ?array
    {
        try {
            $data = json_decode($text, true, 32, JSON_THROW_ON_ERROR);
        } catch (\JsonException) {
            return null;
        }
        return is_array($data) ? $data : null;
    }

    /**
     * Reports $e and returns the fallback's results; never throws.
     *
     * @return list<mixed>
     */
    private function fallbackFor(\Throwable $e): array
    {
        try {
            if ($this->logger !== null && method_exists($this->logger, 'warning')) {
                $this->logger->warning('videofeed: {message}', ['message' => $e->getMessage(), 'exception' => $e]);
            } elseif (is_callable($this->onError)) {
                ($this->onError)($e);
            } else {
                error_log($e->getMessage());
            }
        } catch (\Throwable) {
            // A failing logger must not break the page either.
        }
        try {
            $value = is_callable($this->fallback) ? ($this->fallback)($e) : $this->fallback;
            return is_array($value) ? array_values($value) : [];
        } catch (\Throwable) {
            return [];
        }
    }
}
