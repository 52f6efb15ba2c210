<?php
/**
 * Example template: the feed slot of a discovery page.
 *
 *   php clients/php/example.php 'lofi hip' DE        # prints the HTML
 *   (or serve it with PHP under LiteSpeed and open /example.php?q=lofi)
 *
 * The slot renders whatever fetch_feed() returns; when the feed is down it
 * shows the "trending" fallback instead, and the page never breaks.
 */

declare(strict_types=1);

require_once __DIR__ . '/videofeed.php';

$query = $argv[1] ?? ($_GET['q'] ?? 'music');
$region = $argv[2] ?? ($_GET['region'] ?? 'US');
$base = getenv('VIDEOFEED_URL') ?: 'http://127.0.0.1/feed';

$trending = [
    ['id' => 'trending-1', 'title' => 'Trending now', 'channel' => 'Editors', 'duration_seconds' => 0,
     'thumbnail' => '/static/trending.jpg', 'region' => 'GLOBAL', 'score' => 0.0],
];

$videos = fetch_feed($query, $region, 12, [
    'base_url' => $base,
    'fallback' => $trending,
]);

function h(mixed $v): string
{
    return htmlspecialchars((string) $v, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

function duration(int $s): string
{
    return $s >= 3600 ? sprintf('%d:%02d:%02d', intdiv($s, 3600), intdiv($s % 3600, 60), $s % 60)
                      : sprintf('%d:%02d', intdiv($s, 60), $s % 60);
}
?>
<section class="feed" data-query="<?= h($query) ?>">
  <h2>Videos for “<?= h($query) ?>”</h2>
<?php if ($videos === []): ?>
  <p class="feed-empty">No videos found.</p>
<?php else: ?>
  <ul>
<?php foreach ($videos as $v): ?>
    <li data-id="<?= h($v['id']) ?>">
      <img src="<?= h($v['thumbnail'] ?? '') ?>" alt="" loading="lazy" width="320" height="180">
      <a href="/watch?v=<?= h(rawurlencode((string) $v['id'])) ?>"><?= h($v['title']) ?></a>
      <span class="channel"><?= h($v['channel'] ?? '') ?></span>
      <span class="duration"><?= h(duration((int) ($v['duration_seconds'] ?? 0))) ?></span>
    </li>
<?php endforeach; ?>
  </ul>
<?php endif; ?>
</section>
