<?php
/**
 * PHPUnit tests of clients/php/videofeed.php against the real stack.
 *
 * Run by tests/fronts.rs, which starts videofeed behind nginx and passes:
 *   VF_BASE_URL     nginx → videofeed /feed
 *   VF_STOPPED_URL  nginx → a socket nobody serves (502)
 *   VF_ERROR_URL    nginx answering 503
 *   VF_GARBAGE_URL  nginx answering 200 with malformed JSON
 *   VF_DOWN_URL     a port where nothing listens
 */

declare(strict_types=1);

use PHPUnit\Framework\TestCase;

require_once __DIR__ . '/../../clients/php/videofeed.php';

final class FeedClientTest extends TestCase
{
    private const TRENDING = [['id' => 'trend-1', 'title' => 'Trending', 'channel' => 'Editors']];

    private static function url(string $name): string
    {
        $v = getenv($name);
        if ($v === false || $v === '') {
            self::markTestSkipped("$name is not set (run through tests/fronts.rs)");
        }
        return $v;
    }

    /** Calls fetch_feed, asserting it neither throws nor takes longer than $max_ms. */
    private function timed(string $base, string $q = 'lofi hip', int $limit = 5, array $extra = [], int $max_ms = 450): array
    {
        $errors = [];
        $opts = $extra + ['base_url' => $base, 'fallback' => self::TRENDING, 'on_error' => function (Throwable $e) use (&$errors) {
            $errors[] = $e->getMessage();
        }];
        $t = hrtime(true);
        $result = fetch_feed($q, 'DE', $limit, $opts);
        $ms = (hrtime(true) - $t) / 1e6;
        $this->assertLessThan($max_ms, $ms, "fetch_feed took {$ms} ms");
        return [$result, $errors];
    }

    public function testNormalAnswerRendersInTheTemplate(): void
    {
        [$videos, $errors] = $this->timed(self::url('VF_BASE_URL'));
        $this->assertSame([], $errors);
        $this->assertNotEmpty($videos);
        $this->assertLessThanOrEqual(5, count($videos));
        foreach ($videos as $v) {
            $this->assertArrayHasKey('id', $v);
            $this->assertArrayHasKey('title', $v);
            $this->assertContains($v['region'], ['DE', 'GLOBAL']);
        }
        $this->assertNotSame('trend-1', $videos[0]['id']);

        putenv('VIDEOFEED_URL=' . self::url('VF_BASE_URL'));
        $argv_backup = $GLOBALS['argv'] ?? null;
        $GLOBALS['argv'] = ['example.php', 'lofi hip', 'DE'];
        $argv = $GLOBALS['argv'];
        ob_start();
        include __DIR__ . '/../../clients/php/example.php';
        $html = (string) ob_get_clean();
        $GLOBALS['argv'] = $argv_backup;
        $this->assertStringContainsString('<li data-id="' . htmlspecialchars($videos[0]['id']) . '">', $html);
        $this->assertStringNotContainsString('trend-1', $html);
    }

    public function testTheWholeAnswerPagesHighlightsAndSaysWhatWasDropped(): void
    {
        $base = self::url('VF_BASE_URL');
        $opts = ['base_url' => $base, 'on_error' => function (Throwable $e) { $this->fail($e->getMessage()); }];
        // Word dropping: no video has all three words; the answer says which were dropped.
        $answer = fetch_feed_answer('night walk music', 'US', 3, $opts + ['params' => ['highlight' => 1]]);
        $this->assertArrayNotHasKey('fallback', $answer);
        $this->assertNotEmpty($answer['relaxed']['dropped']);
        $this->assertTrue($answer['has_more']);
        $this->assertSame(3, $answer['next']);
        $this->assertStringContainsString('<mark>', $answer['results'][0]['title_highlighted']);
        // Paging with next walks the list without repeats.
        $seen = [];
        $offset = 0;
        do {
            $page = fetch_feed_answer('night walk music', 'US', 3, $opts + ['params' => ['offset' => $offset]]);
            foreach ($page['results'] as $v) {
                $this->assertArrayNotHasKey($v['id'], $seen, 'a video appeared twice');
                $seen[$v['id']] = true;
            }
            $offset = $page['next'];
        } while ($page['has_more']);
        $this->assertGreaterThan(3, count($seen));
        // Typo corrections reach the template too.
        $typo = fetch_feed_answer('muisc', 'US', 3, $opts);
        $this->assertSame('music', $typo['corrected']['muisc']);
        // A failure is the fallback, in the same shape.
        $down = fetch_feed_answer('x', 'US', 5, ['base_url' => self::url('VF_DOWN_URL'), 'fallback' => self::TRENDING, 'on_error' => fn () => null]);
        $this->assertTrue($down['fallback']);
        $this->assertSame(self::TRENDING, $down['results']);
        $this->assertFalse($down['has_more']);
        // An unknown parameter is a mistake in the template: reported, fallback returned.
        $errors = [];
        $bad = fetch_feed('x', 'US', 5, ['base_url' => $base, 'params' => ['colour' => 'red'], 'on_error' => function (Throwable $e) use (&$errors) {
            $errors[] = $e->getMessage();
        }]);
        $this->assertSame([], $bad);
        $this->assertStringContainsString("unknown parameter 'colour'", $errors[0]);
    }

    public function testStoppedServiceFallsBackQuickly(): void
    {
        // Nothing listening at all: connection refused.
        [$videos, $errors] = $this->timed(self::url('VF_DOWN_URL'));
        $this->assertSame(self::TRENDING, $videos);
        $this->assertCount(1, $errors);
        // The web server up, videofeed stopped: 502.
        [$videos, $errors] = $this->timed(self::url('VF_STOPPED_URL'));
        $this->assertSame(self::TRENDING, $videos);
        $this->assertStringContainsString('502', $errors[0]);
    }

    public function testServiceThatAcceptsButNeverAnswersFallsBackWithin450ms(): void
    {
        // A listening socket that is never accept()ed: the kernel completes the TCP handshake,
        // the request is sent, and no answer ever comes.
        $server = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
        $this->assertNotFalse($server, $errstr);
        $addr = stream_socket_get_name($server, false);
        [$videos, $errors] = $this->timed("http://$addr/feed");
        fclose($server);
        $this->assertSame(self::TRENDING, $videos);
        $this->assertMatchesRegularExpression('/timed out|Timeout/i', $errors[0]);
    }

    public function testErrorStatusesFallBack(): void
    {
        // A query videofeed refuses (a 400: limit out of range, an emoji-only q) is not an
        // outage: no results, no fallback, nothing reported; the answer says why.
        [$videos, $errors] = $this->timed(self::url('VF_BASE_URL'), 'lofi', 500);
        $this->assertSame([], $videos);
        $this->assertSame([], $errors);
        $answer = fetch_feed_answer('😀', 'DE', 5, ['base_url' => self::url('VF_BASE_URL'), 'fallback' => self::TRENDING, 'on_error' => function (Throwable $e) use (&$errors) {
            $errors[] = $e->getMessage();
        }]);
        $this->assertSame([], $errors);
        $this->assertSame([], $answer['results']);
        $this->assertArrayNotHasKey('fallback', $answer);
        $this->assertSame('q', $answer['error']['param']);
        // 5xx.
        [$videos, $errors] = $this->timed(self::url('VF_ERROR_URL'));
        $this->assertSame(self::TRENDING, $videos);
        $this->assertStringContainsString('503', $errors[0]);
    }

    public function testMalformedJsonFallsBack(): void
    {
        [$videos, $errors] = $this->timed(self::url('VF_GARBAGE_URL'));
        $this->assertSame(self::TRENDING, $videos);
        $this->assertNotEmpty($errors);
    }

    public function testDefaultFallbackIsAnEmptyListAndCallablesWork(): void
    {
        $silent = ['on_error' => fn () => null];
        $this->assertSame([], fetch_feed('x', 'US', 5, ['base_url' => self::url('VF_DOWN_URL')] + $silent));
        $got = fetch_feed('x', 'US', 5, ['base_url' => self::url('VF_DOWN_URL'), 'fallback' => fn () => self::TRENDING] + $silent);
        $this->assertSame(self::TRENDING, $got);
    }

    public function testNothingThrowsIntoTheTemplate(): void
    {
        $bad = [
            ['base_url' => 'not a url at all'],
            ['base_url' => 'ftp://127.0.0.1/feed'],
            ['base_url' => self::url('VF_DOWN_URL'), 'fallback' => function () { throw new LogicException('boom'); }],
            ['base_url' => self::url('VF_DOWN_URL'), 'on_error' => function () { throw new LogicException('logger'); }],
            ['base_url' => self::url('VF_DOWN_URL'), 'fallback' => 'not an array'],
            ['base_url' => self::url('VF_BASE_URL'), 'timeout_ms' => -5],
        ];
        foreach ($bad as $opts) {
            $result = fetch_feed("q\0\"'<>", 'ZZZ', -1, $opts + (isset($opts['on_error']) ? [] : ['on_error' => fn () => null]));
            $this->assertIsArray($result);
        }
    }
}
