<?php

declare(strict_types=1);

namespace Videofeed;

/**
 * One page of the feed as a template uses it: the results, whether another page
 * follows and its offset, and what the service did to the query (typo
 * corrections, dropped words). On a failure it holds the fallback instead, with
 * $fromFallback true and the reason in $error. A query the feed refuses (400 or
 * 422: the visitor's input) holds no results, $fromFallback false, and the
 * server's reason in $error (refused(), problem()).
 */
final class FeedResult
{
    /**
     * @param list<array<string, mixed>> $results each with id, title, channel,
     *        duration_seconds, thumbnail, region, published_at, view_count, score (and title_highlighted,
     *        channel_highlighted with highlight; channel_* fields when enriched)
     * @param array<string, string> $corrected typed word => the known word searched instead
     * @param list<string> $dropped words left out to fill the page (word dropping)
     * @param array<string, mixed> $raw the decoded answer as sent (empty for a fallback)
     * @param int|null $total videos matching (exact up to 10,000; null when not counted)
     * @param bool $totalIsExact false when more than 10,000 match ($total is then 10,000)
     */
    public function __construct(
        public readonly string $query,
        public readonly string $region,
        public readonly array $results,
        public readonly bool $hasMore = false,
        public readonly ?int $next = null,
        public readonly bool $truncated = false,
        public readonly array $corrected = [],
        public readonly array $dropped = [],
        public readonly bool $fromFallback = false,
        public readonly ?\Throwable $error = null,
        public readonly array $raw = [],
        public readonly ?int $total = null,
        public readonly bool $totalIsExact = true,
    ) {
    }

    /** Results on this page. */
    public function count(): int
    {
        return count($this->results);
    }

    /** Whether the feed refused the query itself (400/422: empty, no letter or digit, too long). */
    public function refused(): bool
    {
        return !$this->fromFallback && $this->error instanceof VideofeedException
            && in_array($this->error->status, [400, 422], true);
    }

    /**
     * The server's reason for a refused query, for the page ("Type at least one
     * letter or digit"): ['param' => 'q', 'message' => …]; null when not refused.
     *
     * @return array{param: string|null, message: string}|null
     */
    public function problem(): ?array
    {
        if (!$this->refused() || !$this->error instanceof VideofeedException) {
            return null;
        }
        $error = $this->error->answer['error'] ?? [];
        return [
            'param' => is_string($error['param'] ?? null) ? $error['param'] : null,
            'message' => is_string($error['message'] ?? null) ? $error['message'] : $this->error->getMessage(),
        ];
    }

    /** Whether a typo correction changed what was searched ("did you mean"). */
    public function wasCorrected(): bool
    {
        return $this->corrected !== [];
    }

    /** Whether words were dropped to fill the page ("showing results without …"). */
    public function wasRelaxed(): bool
    {
        return $this->dropped !== [];
    }

    /**
     * Builds a result from a decoded /feed answer.
     *
     * @param array<string, mixed> $answer
     * @throws VideofeedException when the answer is not a feed answer
     */
    public static function fromAnswer(array $answer): self
    {
        $results = $answer['results'] ?? null;
        if (!is_array($results) || !array_is_list($results)) {
            throw new VideofeedException('videofeed: the answer has no results list', 200, $answer);
        }
        foreach ($results as $item) {
            if (!is_array($item) || !isset($item['id'], $item['title'])) {
                throw new VideofeedException('videofeed: a result without id or title', 200, $answer);
            }
        }
        $corrected = is_array($answer['corrected'] ?? null) ? $answer['corrected'] : [];
        $dropped = $answer['relaxed']['dropped'] ?? [];
        return new self(
            query: (string) ($answer['query'] ?? ''),
            region: (string) ($answer['region'] ?? ''),
            results: $results,
            hasMore: (bool) ($answer['has_more'] ?? false),
            next: isset($answer['next']) && is_int($answer['next']) ? $answer['next'] : null,
            truncated: (bool) ($answer['truncated'] ?? false),
            corrected: array_map('strval', $corrected),
            dropped: is_array($dropped) ? array_values(array_map('strval', $dropped)) : [],
            raw: $answer,
            total: isset($answer['total']) && is_int($answer['total']) ? $answer['total'] : null,
            totalIsExact: (bool) ($answer['total_is_exact'] ?? true),
        );
    }

    /**
     * The answer as an array in the shape of the JSON (what fetch_feed_answer() returns);
     * a fallback has 'fallback' => true; a refused query no results and 'error' (the server's).
     *
     * @return array<string, mixed>
     */
    public function toArray(): array
    {
        if ($this->refused() && $this->error instanceof VideofeedException) {
            return [
                'query' => $this->query, 'region' => $this->region, 'count' => 0, 'results' => [],
                'has_more' => false, 'next' => null, 'truncated' => false,
                'error' => $this->error->answer['error'] ?? ['status' => $this->error->status, 'message' => $this->error->getMessage()],
            ];
        }
        if (!$this->fromFallback) {
            return $this->raw;
        }
        return [
            'query' => $this->query, 'region' => $this->region, 'count' => count($this->results),
            'results' => $this->results, 'has_more' => false, 'next' => null, 'truncated' => false,
            'fallback' => true,
        ];
    }
}
