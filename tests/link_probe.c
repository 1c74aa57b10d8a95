/* link_probe - a Link peer on daemon/link.h, driven line by line on stdin,
 * answering each line with one JSON line on stdout.  For tests/test_link.py,
 * which runs it only inside network namespaces of its own (unshare -n, ip netns).
 *
 *   link_probe [BPM]          a peer with that tempo (default 120), enabled
 *
 *   peers                     {"peers":N,"enabled":B}
 *   clock                     {"clock":US}            Link's clock now
 *   tempo                     {"tempo":BPM}
 *   tempo BPM                 proposes BPM from now (app side), then as "tempo"
 *   beat Q [US]               beat, phase, next bar at US (default now) for
 *                             quantum Q, read through the audio-side capture
 *   app Q [US]                the same through the app-side capture
 *   audio_tempo BPM           proposes BPM through the audio-side commit
 *   request BEAT Q            requests BEAT at now for quantum Q (audio side)
 *   play 0|1                  sets the start/stop state now (app side)
 *   sync 0|1                  start/stop sync off/on
 *   enable 0|1                leaves/joins the session
 *   quit                      {"bye":true}, exits 0
 * A bad line gets {"error":"..."}.
 */
#include "link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_snapshot(const struct link_snapshot *s)
{
    printf("{\"tempo\":%.17g,\"beat\":%.17g,\"phase\":%.17g,\"host_us\":%lld,"
           "\"quantum\":%.17g,\"next_bar_us\":%lld,\"playing\":%s}\n",
           s->tempo, s->beat, s->phase, (long long)s->host_us, s->quantum,
           (long long)s->next_bar_us, s->playing ? "true" : "false");
}

static int64_t time_arg(const char *s)
{
    return s ? strtoll(s, NULL, 10) : link_clock_micros();
}

int main(int argc, char **argv)
{
    double bpm = argc > 1 ? strtod(argv[1], NULL) : 120.0;
    struct link_peer *l;
    int rc = link_create(bpm, &l);
    if (rc < 0) {
        fprintf(stderr, "link_probe: link_create: %s\n", strerror(-rc));
        return 1;
    }
    rc = link_enable(l, true);
    if (rc < 0) {
        fprintf(stderr, "link_probe: link_enable: %s\n", strerror(-rc));
        link_destroy(l);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("{\"ready\":true,\"clock\":%lld}\n", (long long)link_clock_micros());

    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        char *save = NULL;
        char *cmd = strtok_r(line, " \t\r\n", &save);
        char *a1 = cmd ? strtok_r(NULL, " \t\r\n", &save) : NULL;
        char *a2 = a1 ? strtok_r(NULL, " \t\r\n", &save) : NULL;
        struct link_snapshot s;
        if (!cmd) {
            printf("{\"error\":\"empty line\"}\n");
        } else if (!strcmp(cmd, "quit")) {
            printf("{\"bye\":true}\n");
            break;
        } else if (!strcmp(cmd, "peers")) {
            printf("{\"peers\":%zu,\"enabled\":%s}\n", link_peers(l),
                   link_is_enabled(l) ? "true" : "false");
        } else if (!strcmp(cmd, "clock")) {
            printf("{\"clock\":%lld}\n", (long long)link_clock_micros());
        } else if (!strcmp(cmd, "tempo")) {
            if (a1 && link_app_set_tempo(l, strtod(a1, NULL), link_clock_micros()) < 0) {
                printf("{\"error\":\"set tempo failed\"}\n");
                continue;
            }
            link_app_capture(l, link_clock_micros(), 4.0, &s);
            printf("{\"tempo\":%.17g}\n", s.tempo);
        } else if ((!strcmp(cmd, "beat") || !strcmp(cmd, "app")) && a1) {
            double q = strtod(a1, NULL);
            if (!(q > 0)) {
                printf("{\"error\":\"quantum must be > 0\"}\n");
                continue;
            }
            if (cmd[0] == 'b')
                link_audio_capture(l, time_arg(a2), q, &s);
            else
                link_app_capture(l, time_arg(a2), q, &s);
            print_snapshot(&s);
        } else if (!strcmp(cmd, "audio_tempo") && a1) {
            int64_t now = link_clock_micros();
            link_audio_capture(l, now, 4.0, NULL);
            link_audio_set_tempo(l, strtod(a1, NULL), now);
            link_audio_commit(l);
            printf("{\"ok\":true}\n");
        } else if (!strcmp(cmd, "request") && a1 && a2) {
            int64_t now = link_clock_micros();
            link_audio_capture(l, now, strtod(a2, NULL), NULL);
            link_audio_request_beat_at(l, strtod(a1, NULL), now, strtod(a2, NULL));
            link_audio_commit(l);
            printf("{\"ok\":true}\n");
        } else if (!strcmp(cmd, "play") && a1) {
            link_app_set_playing(l, atoi(a1) != 0, link_clock_micros());
            printf("{\"ok\":true}\n");
        } else if (!strcmp(cmd, "sync") && a1) {
            link_set_start_stop_sync(l, atoi(a1) != 0);
            printf("{\"ok\":true}\n");
        } else if (!strcmp(cmd, "enable") && a1) {
            link_enable(l, atoi(a1) != 0);
            printf("{\"ok\":true}\n");
        } else {
            printf("{\"error\":\"unknown command\"}\n");
        }
    }
    link_destroy(l);
    return 0;
}
