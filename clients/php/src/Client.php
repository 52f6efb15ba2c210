<?php

declare(strict_types=1);

namespace Videofeed;

/**
 * The videofeed client for PHP templates and tools.
 *
 * Reads (search(), feed(), pages()) never throw into a template: on any failure
 * (nothing listening, a timeout, an error status, malformed JSON, a mistake in
 * the call) they report it (the PSR-3 logger as a warning, else the onError
 * callable, else error_log()) and return a FeedResult holding the fallback,
 * within the time budget (400 ms by default, connect included). Build the
 * client with throwOnError: true to get a VideofeedException instead.
 *
 * Writes (upsert(), delete()) are for operators' tools: they need the admin
 * token and throw a VideofeedException on failure (a 422 carries the rejected
 * lines in ->answer).
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
        $url = $this->baseUrl . (str_contains($this->baseUrl, '?') ? '&' : '?')
            . http_build_query($query, '', '&', PHP_QUERY_RFC3986);
        [$status, $body] = $this->http('GET', $url, null, [], max(1, $this->timeoutMs));
        if ($status >= 400) {
            throw new VideofeedException("videofeed: $url answered HTTP $status", $status, self::decodeOrNull($body));
        }
        $data = json_decode($body, true, 32, JSON_THROW_ON_ERROR);
        if (!is_array($data)) {
            throw new VideofeedException("videofeed: $url answered JSON that is not an object", $status);
        }
        return $data;
    }

    /**
     * One write request with the token; the decoded answer of a 2xx, else an exception.
     *
     * @return array<string, mixed>
     */
    private function write(string $method, string $path, string $body): array
    {
        if ($this->token === null || $this->token === '') {
            throw new VideofeedException('videofeed: writes need the admin token (new Client(token: …))');
        }
        $url = rtrim($this->baseUrl, '/') . $path;
        $headers = ['Authorization: Bearer ' . $this->token, 'Content-Type: application/x-ndjson'];
        [$status, $text] = $this->http($method, $url, $body === '' ? null : $body, $headers, max(1, $this->writeTimeoutMs));
        $answer = self::decodeOrNull($text);
        if ($status < 200 || $status >= 300 || $answer === null) {
            $why = is_string($answer['error']['message'] ?? null) ? ': ' . $answer['error']['message'] : '';
            throw new VideofeedException("videofeed: $method $url answered HTTP $status$why", $status, $answer);
        }
        return $answer;
    }

    /**
     * One HTTP exchange with curl: [status, body]; throws when there is no answer.
     *
     * @param list<string> $headers
     * @return array{0: int, 1: string}
     */
    private function http(string $method, string $url, ?string $body, array $headers, int $timeoutMs): array
    {
        if (!function_exists('curl_init')) {
            throw new VideofeedException('videofeed: the PHP curl extension is not installed');
        }
        $ch = curl_init($url);
        if ($ch === false) {
            throw new VideofeedException("videofeed: cannot make a request for $url");
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
            throw new VideofeedException("videofeed: $url failed: $error", $status);
        }
        return [$status, $text];
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
