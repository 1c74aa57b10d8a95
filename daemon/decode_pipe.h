/* decode_pipe.h - INTERNAL to the decoder: the pipelined conversion
 * strategy (decode_pipe.c), and draining a file of unknown length.  */
#ifndef LOOPERD_DECODE_PIPE_H
#define LOOPERD_DECODE_PIPE_H

#include <stdbool.h>

#include "decode_core.h"

struct reader;

/* The output has reached max_frames while the length is unknown: reads on
 * to the end, from `rd` or (NULL) here, which either shows the file fits
 * after all or fails as soon as it cannot. */
int decode_drain(struct decoder *d, struct reader *rd);

/* Converts the whole file through d->soxr, with a reader thread decoding
 * ahead, or all on this thread for a short file or when the thread cannot
 * be had. */
int decode_pipe(struct decoder *d);

#endif
