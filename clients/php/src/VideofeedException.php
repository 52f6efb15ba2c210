<?php

declare(strict_types=1);

namespace Videofeed;

/**
 * A request to videofeed failed: no answer, a timeout, an error status or an
 * answer that is not the expected JSON. Reads never throw it into a template
 * unless the client was built with throwOnError; writes always do.
 */
class VideofeedException extends \RuntimeException
{
    /**
     * @param int $status the HTTP status of the answer, 0 when there was none
     * @param array<string, mixed>|null $answer the decoded JSON answer, when there was one
     *                                          (a 422's `rejected` lines are in it)
     */
    public function __construct(
        string $message,
        public readonly int $status = 0,
        public readonly ?array $answer = null,
        ?\Throwable $previous = null,
    ) {
        parent::__construct($message, $status, $previous);
    }
}
