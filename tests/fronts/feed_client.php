<?php
// How a PHP template fetches the feed: a local URL, a short timeout, and a
// fallback so a slow or restarting videofeed never breaks the page.
// Usage: php feed_client.php BASE_URL QUERY [REGION] [LIMIT]
// Prints one JSON line: {"source":"feed"|"fallback","http":CODE,"count":N,"ids":[...]}

function videofeed_fetch(string $base, string $q, string $region = 'US', int $limit = 24, int $timeout_ms = 800): array
{
    $url = rtrim($base, '/') . '/feed?' . http_build_query(['q' => $q, 'region' => $region, 'limit' => $limit]);
    $ch = curl_init($url);
    curl_setopt_array($ch, [
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_CONNECTTIMEOUT_MS => 200,
        CURLOPT_TIMEOUT_MS => $timeout_ms,
        CURLOPT_ENCODING => '',            // accept gzip if the web server compresses
    ]);
    $body = curl_exec($ch);
    $code = (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
    curl_close($ch);
    if ($body === false || $code !== 200) {
        return ['source' => 'fallback', 'http' => $code, 'results' => []];
    }
    $data = json_decode($body, true);
    if (!is_array($data) || !isset($data['results']) || !is_array($data['results'])) {
        return ['source' => 'fallback', 'http' => $code, 'results' => []];
    }
    return ['source' => 'feed', 'http' => $code, 'results' => $data['results']];
}

$r = videofeed_fetch($argv[1], $argv[2], $argv[3] ?? 'US', (int) ($argv[4] ?? 24));
echo json_encode([
    'source' => $r['source'],
    'http' => $r['http'],
    'count' => count($r['results']),
    'ids' => array_map(fn ($v) => $v['id'], $r['results']),
]), "\n";
