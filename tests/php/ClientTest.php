<?php
/**
 * PHPUnit tests of the Composer package's \Videofeed\Client against the real
 * stack (nginx → videofeed), run by tests/fronts.rs with the same variables as
 * FeedClientTest.php plus VF_TOKEN, the admin token the responder runs with.
 */

declare(strict_types=1);

use PHPUnit\Framework\TestCase;
use Videofeed\Client;
use Videofeed\FeedResult;
use Videofeed\VideofeedException;

require_once __DIR__ . '/../../clients/php/videofeed.php';

/** A PSR-3-shaped logger (the interface is not required: anything with warning()). */
final class RecordingLogger
{
    /** @var list<array{string, array<string, mixed>}> */
    public array $warnings = [];

    public function warning(string|\Stringable $message, array $context = []): void
    {
        $this->warnings[] = [(string) $message, $context];
    }
}

final class ClientTest extends TestCase
{
    private const TRENDING = [['id' => 'trend-1', 'title' => 'Trending', 'channel' => 'Editors']];

    private static function env(string $name): string
    {
        $v = getenv($name);
        if ($v === false || $v === '') {
            self::markTestSkipped("$name is not set (run through tests/fronts.rs)");
        }
        return $v;
    }

    private static function client(string $url, ?RecordingLogger $logger = null): Client
    {
        return new Client(baseUrl: $url, fallback: self::TRENDING, logger: $logger ?? new RecordingLogger());
    }

    public function testEveryParameterAndTheResultObject(): void
    {
        $feed = self::client(self::env('VF_BASE_URL'));
        $page = $feed->search('night walk music', region: 'us', limit: 3, highlight: true);
        $this->assertFalse($page->fromFallback, (string) $page->error?->getMessage());
        $this->assertSame('US', $page->region);
        $this->assertSame(3, $page->count());
        $this->assertTrue($page->hasMore);
        $this->assertSame(3, $page->next);
        $this->assertTrue($page->wasRelaxed(), 'no video has all three words');
        $this->assertStringContainsString('<mark>', $page->results[0]['title_highlighted']);

        $typo = $feed->search('muisc', limit: 2);
        $this->assertTrue($typo->wasCorrected());
        $this->assertSame(['muisc' => 'music'], $typo->corrected);

        $recent = $feed->search('music', limit: 5, sort: 'recent', minDuration: 60, maxDuration: 3600);
        $this->assertFalse($recent->fromFallback);
        foreach ($recent->results as $v) {
            $this->assertGreaterThanOrEqual(60, $v['duration_seconds']);
            $this->assertLessThanOrEqual(3600, $v['duration_seconds']);
        }
        $channel = $recent->results[0]['channel'];
        $only = $feed->search('music', channel: $channel, limit: 100);
        $this->assertNotEmpty($only->results);
        foreach ($only->results as $v) {
            $this->assertSame($channel, $v['channel']);
        }
        $this->assertCount(5, $recent->results);
    }

    public function testPagingWalksTheWholeListOnce(): void
    {
        $feed = self::client(self::env('VF_BASE_URL'));
        $all = $feed->search('music', limit: 100);
        $this->assertFalse($all->fromFallback);
        $seen = [];
        $pages = 0;
        foreach ($feed->pages('music', 'US', 7) as $n => $page) {
            $this->assertInstanceOf(FeedResult::class, $page);
            $this->assertFalse($page->fromFallback);
            $this->assertSame($pages, $n);
            $pages++;
            foreach ($page->results as $v) {
                $this->assertArrayNotHasKey($v['id'], $seen, 'a video appeared twice');
                $seen[$v['id']] = true;
            }
            if (!$page->hasMore) {
                $this->assertNull($page->next);
            }
        }
        $this->assertGreaterThan(1, $pages);
        // The same list as one big page, in the same order, when it fits in one.
        if (!$all->hasMore) {
            $this->assertSame(array_column($all->results, 'id'), array_keys($seen));
        } else {
            $this->assertSame(array_slice(array_keys($seen), 0, 100), array_column($all->results, 'id'));
        }
    }

    public function testFailuresAreTheFallbackWithinTheBudgetAndLogged(): void
    {
        // A socket that never answers (never accept()ed): the 400 ms budget.
        $server = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
        $this->assertNotFalse($server, $errstr);
        $addr = stream_socket_get_name($server, false);
        $cases = [
            'timeout' => ["http://$addr/feed", '/timed out|timeout/i'],
            'refused' => [self::env('VF_DOWN_URL'), '/connect|refused/i'],
            'http 502' => [self::env('VF_STOPPED_URL'), '/502/'],
            'http 503' => [self::env('VF_ERROR_URL'), '/503/'],
            'garbage' => [self::env('VF_GARBAGE_URL'), '/syntax|json|results/i'],
        ];
        foreach ($cases as $what => [$url, $why]) {
            $logger = new RecordingLogger();
            $t = hrtime(true);
            $page = self::client($url, $logger)->search('lofi');
            $ms = (hrtime(true) - $t) / 1e6;
            $this->assertLessThan(450, $ms, "$what took $ms ms");
            $this->assertTrue($page->fromFallback, $what);
            $this->assertSame(self::TRENDING, $page->results, $what);
            $this->assertFalse($page->hasMore);
            $this->assertCount(1, $logger->warnings, $what);
            $this->assertMatchesRegularExpression($why, $page->error?->getMessage() ?? '', $what);
            $this->assertSame($page->error, $logger->warnings[0][1]['exception']);
        }
        fclose($server);
        // A 4xx from videofeed (a mistake in the call) is a failure too; asked to, it throws.
        $strict = new Client(baseUrl: self::env('VF_BASE_URL'), throwOnError: true);
        try {
            $strict->search('lofi', limit: 500);
            $this->fail('no exception');
        } catch (VideofeedException $e) {
            $this->assertSame(400, $e->status);
            $this->assertSame('limit', $e->answer['error']['param']);
        }
        // A callable fallback gets the reason; an unknown parameter is reported, not thrown.
        $client = new Client(baseUrl: self::env('VF_DOWN_URL'), fallback: fn (Throwable $e) => [['id' => 'x', 'why' => $e::class]], onError: fn () => null);
        $this->assertSame('Videofeed\VideofeedException', $client->search('a')->results[0]['why']);
        $logger = new RecordingLogger();
        $page = self::client(self::env('VF_BASE_URL'), $logger)->feed('a', 'US', 5, ['colour' => 'red']);
        $this->assertTrue($page->fromFallback);
        $this->assertStringContainsString("unknown parameter 'colour'", $logger->warnings[0][1]['message']);
    }

    public function testARefusedQueryIsAResultNotAnOutageAndLogsNeverHoldTheQuery(): void
    {
        $logger = new RecordingLogger();
        $feed = self::client(self::env('VF_BASE_URL'), $logger);
        foreach (['empty' => '', 'emoji only' => '😀🎵', 'too long' => str_repeat('lofi ', 30)] as $what => $q) {
            $page = $feed->search($q);
            $this->assertTrue($page->refused(), $what);
            $this->assertFalse($page->fromFallback, $what);
            $this->assertSame([], $page->results, $what);
            $this->assertSame('q', $page->problem()['param'] ?? null, $what);
            $this->assertInstanceOf(VideofeedException::class, $page->error);
            $this->assertSame(400, $page->error->status);
            // The server's reason is in the message.
            $this->assertStringContainsString($page->problem()['message'], $page->error->getMessage(), $what);
        }
        $this->assertSame([], $logger->warnings, 'a refused query is not logged');
        // A real failure is logged, without the visitor's query text (the path only).
        $secret = 'my secret medical question';
        $page = self::client(self::env('VF_ERROR_URL'), $logger)->search($secret);
        $this->assertTrue($page->fromFallback);
        $this->assertCount(1, $logger->warnings);
        $this->assertStringNotContainsString('secret', $logger->warnings[0][1]['message']);
        $this->assertStringNotContainsString('secret', $page->error->getMessage());
        $this->assertStringContainsString('503', $page->error->getMessage());
        $down = self::client(self::env('VF_DOWN_URL'), $logger)->search($secret);
        $this->assertStringNotContainsString('secret', $down->error->getMessage());
        // logQueries: true puts the whole URL in, for debugging.
        $debug = new Client(baseUrl: self::env('VF_ERROR_URL'), logQueries: true, onError: fn () => null);
        $this->assertStringContainsString('secret', $debug->search($secret)->error->getMessage());
        // throwOnError: the exception carries the server's reason.
        try {
            (new Client(baseUrl: self::env('VF_BASE_URL'), throwOnError: true))->search('😀');
            $this->fail('no exception');
        } catch (VideofeedException $e) {
            $this->assertStringContainsString('has no searchable word', $e->getMessage());
        }
    }

    public function testBrowsingTotalsAndTheTrendingFallback(): void
    {
        $feed = self::client(self::env('VF_BASE_URL'));
        $trending = $feed->browse('US', 'popular', limit: 3);
        $this->assertFalse($trending->fromFallback, (string) $trending->error?->getMessage());
        $this->assertSame(3, $trending->count());
        $views = array_column($trending->results, 'view_count');
        $sorted = $views;
        rsort($sorted);
        $this->assertSame($sorted, $views);
        $this->assertIsInt($trending->total);
        $this->assertTrue($trending->totalIsExact);
        $channel = $trending->results[0]['channel'];
        $page = $feed->browse('US', 'recent', channel: strtoupper($channel));
        $this->assertNotSame([], $page->results);
        foreach ($page->results as $video) {
            $this->assertSame($channel, $video['channel']);
        }
        $global = $feed->browse('GLOBAL', 'recent', limit: 5);
        foreach ($global->results as $video) {
            $this->assertSame('GLOBAL', $video['region']);
        }
        $search = $feed->search('music');
        $this->assertGreaterThanOrEqual($search->count(), $search->total);
        // The documented fallback pattern: the last good trending list, kept by the page.
        $kept = $trending->results;
        $down = new Client(baseUrl: self::env('VF_DOWN_URL'), fallback: fn () => $kept, onError: fn () => null);
        $this->assertSame($kept, $down->browse('US', 'popular', limit: 3)->results);
    }

    public function testGetPatchAndDeleteMany(): void
    {
        $writer = new Client(baseUrl: self::env('VF_BASE_URL'), token: self::env('VF_TOKEN'));
        $a = 'pga' . bin2hex(random_bytes(3));
        $b = 'pgb' . bin2hex(random_bytes(3));
        $row = fn (string $id) => ['id' => $id, 'title' => 'Okapi Sunrise ' . $id, 'channel' => 'PHP Client',
            'duration_seconds' => 61, 'thumbnail' => "https://i.example/$id.jpg", 'region' => 'FR'];
        $this->assertSame(2, $writer->upsert([$row($a), $row($b)])['inserted']);
        $stored = $writer->get($a);
        $keys = array_keys($stored);
        sort($keys);
        $this->assertSame(['channel', 'duration_seconds', 'id', 'published_at', 'region', 'thumbnail', 'title', 'view_count'], $keys);
        $this->assertNull($stored['published_at']);
        $this->assertSame(1, $writer->patch($a, ['view_count' => 1200000, 'published_at' => '2024-05-01T12:00:00Z'])['updated']);
        $stored = $writer->get($a);
        $this->assertSame([1200000, '2024-05-01T12:00:00Z', 'Okapi Sunrise ' . $a], [$stored['view_count'], $stored['published_at'], $stored['title']]);
        try {
            $writer->patch($a, ['view_count' => -1]);
            $this->fail('no exception');
        } catch (VideofeedException $e) {
            $this->assertSame(422, $e->status);
            $this->assertSame('view_count', $e->answer['error']['param']);
            $this->assertStringContainsString('view_count must be', $e->getMessage());
        }
        $gone = $writer->deleteMany([$a, 'no-such-video', $b]);
        $this->assertSame(2, $gone['deleted']);
        $this->assertSame(['deleted', 'not_found', 'deleted'], array_column($gone['results'], 'result'));
        $this->assertNull($writer->get($a));
        try {
            $writer->patch($a, ['view_count' => 1]);
            $this->fail('no exception');
        } catch (VideofeedException $e) {
            $this->assertSame(404, $e->status);
        }
    }

    public function testWritesWithTheToken(): void
    {
        $base = self::env('VF_BASE_URL');
        $writer = new Client(baseUrl: $base, token: self::env('VF_TOKEN'));
        $id = 'php' . bin2hex(random_bytes(4));
        $answer = $writer->upsert([[
            'id' => $id, 'title' => 'Composer Zebracorn Special', 'channel' => 'PHP Client',
            'duration_seconds' => 42, 'thumbnail' => "https://i.example/$id.jpg", 'region' => 'GLOBAL',
        ]]);
        $this->assertSame(1, $answer['inserted']);
        $found = $writer->search('zebracorn');
        $this->assertSame([$id], array_column($found->results, 'id'));

        // A bad batch: nothing written, the rejected lines in the exception.
        try {
            $writer->upsert([['id' => $id . 'b', 'title' => 'x', 'channel' => 'c', 'duration_seconds' => 1, 'thumbnail' => 'not a url', 'region' => 'US']]);
            $this->fail('no exception');
        } catch (VideofeedException $e) {
            $this->assertSame(422, $e->status);
            $this->assertSame('thumbnail', $e->answer['rejected'][0]['field']);
        }
        // A wrong token is a 403; no token at all never leaves the client.
        try {
            (new Client(baseUrl: $base, token: 'wrong'))->delete($id);
            $this->fail('no exception');
        } catch (VideofeedException $e) {
            $this->assertSame(403, $e->status);
        }
        try {
            (new Client(baseUrl: $base))->delete($id);
            $this->fail('no exception');
        } catch (VideofeedException $e) {
            $this->assertSame(0, $e->status);
        }

        $this->assertSame(1, $writer->delete($id)['deleted']);
        $this->assertSame([], $writer->search('zebracorn')->results);
        try {
            $writer->delete($id);
            $this->fail('no exception');
        } catch (VideofeedException $e) {
            $this->assertSame(404, $e->status);
        }
    }
}
