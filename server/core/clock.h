/* clock.h: the process's two clocks: a monotonic one for deadlines and intervals, and the
 * wall clock for times that are stored or sent (manifests, jobs, webhooks). */
#ifndef ME_CLOCK_H
#define ME_CLOCK_H

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC: only differences mean anything; never goes back, so a
 * deadline survives the wall clock being set. Cannot fail. */
int64_t me_clock_mono_ms(void);

/* Milliseconds since the epoch (CLOCK_REALTIME): for times that outlive the process. */
int64_t me_clock_wall_ms(void);

#endif
