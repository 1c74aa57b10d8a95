/* decode_pipe.h - INTERNAL to the decoder: the pipelined conversion
 * strategy (decode_pipe.c).  */
#ifndef LOOPERD_DECODE_PIPE_H
#define LOOPERD_DECODE_PIPE_H

#include "decode_core.h"

/* Converts the whole file through d->soxr, with a reader thread decoding
 * ahead, or all on this thread for a short file or when the thread cannot
 * be had. */
int decode_pipe(struct decoder *d);

#endif
