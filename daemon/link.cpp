/* link.cpp - the C interface of link.h over ableton::Link (see link.h).
 * The only C++ in looperd.  Built optimized whatever the build type: Link's
 * timing filters at -O0 let peers disagree by tens of microseconds. */
#include "link.h"

#include <ableton/Link.hpp>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <new>

using std::chrono::microseconds;

struct link_peer {
    explicit link_peer(double bpm) : peer(bpm), audio(peer.captureAppSessionState()) {}
    ableton::Link peer;
    /* The audio thread's capture, made here so the audio thread only
     * assigns to it (SessionState is plain data: no allocation). */
    ableton::Link::SessionState audio;
};

namespace
{

void fill(const ableton::Link::SessionState &s, int64_t host_us, double quantum,
          struct link_snapshot *out)
{
    const microseconds t{host_us};
    out->tempo = s.tempo();
    out->beat = s.beatAtTime(t, quantum);
    out->phase = s.phaseAtTime(t, quantum);
    out->host_us = host_us;
    out->quantum = quantum;
    /* The bar line after t: phase 0 lies quantum - phase beats ahead. */
    const double bar = out->beat + (quantum - out->phase);
    out->next_bar_us = s.timeAtBeat(bar, quantum).count();
    out->playing = s.isPlaying();
    out->play_change_us = s.timeForIsPlaying().count();
}

} // namespace

extern "C" {

int64_t link_clock_micros(void)
{
    return ableton::Link::Clock{}.micros().count();
}

int link_create(double bpm, struct link_peer **out)
{
    *out = nullptr;
    if (!std::isfinite(bpm) || bpm <= 0)
        return -EINVAL;
    try {
        *out = new link_peer(bpm);
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;
    }
    return 0;
}

void link_destroy(struct link_peer *l)
{
    if (!l)
        return;
    try {
        l->peer.enable(false);
    } catch (...) {
    }
    delete l;
}

int link_enable(struct link_peer *l, bool on)
{
    try {
        l->peer.enable(on);
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;
    }
    return 0;
}

bool link_is_enabled(const struct link_peer *l)
{
    return l->peer.isEnabled();
}

size_t link_peers(const struct link_peer *l)
{
    return l->peer.numPeers();
}

int link_set_start_stop_sync(struct link_peer *l, bool on)
{
    try {
        l->peer.enableStartStopSync(on);
    } catch (...) {
        return -EIO;
    }
    return 0;
}

bool link_start_stop_sync(const struct link_peer *l)
{
    return l->peer.isStartStopSyncEnabled();
}

void link_audio_capture(struct link_peer *l, int64_t host_us, double quantum,
                        struct link_snapshot *out)
{
    l->audio = l->peer.captureAudioSessionState();
    if (out)
        fill(l->audio, host_us, quantum, out);
}

double link_audio_beat_at(const struct link_peer *l, int64_t host_us, double quantum)
{
    return l->audio.beatAtTime(microseconds{host_us}, quantum);
}

double link_audio_phase_at(const struct link_peer *l, int64_t host_us, double quantum)
{
    return l->audio.phaseAtTime(microseconds{host_us}, quantum);
}

int64_t link_audio_time_at_beat(const struct link_peer *l, double beat, double quantum)
{
    return l->audio.timeAtBeat(beat, quantum).count();
}

void link_audio_set_tempo(struct link_peer *l, double bpm, int64_t host_us)
{
    l->audio.setTempo(bpm, microseconds{host_us});
}

void link_audio_request_beat_at(struct link_peer *l, double beat, int64_t host_us, double quantum)
{
    l->audio.requestBeatAtTime(beat, microseconds{host_us}, quantum);
}

void link_audio_set_playing(struct link_peer *l, bool playing, int64_t host_us)
{
    l->audio.setIsPlaying(playing, microseconds{host_us});
}

void link_audio_commit(struct link_peer *l)
{
    l->peer.commitAudioSessionState(l->audio);
}

int link_app_capture(const struct link_peer *l, int64_t host_us, double quantum,
                     struct link_snapshot *out)
{
    try {
        fill(l->peer.captureAppSessionState(), host_us, quantum, out);
    } catch (...) {
        return -EIO;
    }
    return 0;
}

int64_t link_app_time_at_beat(const struct link_peer *l, double beat, double quantum)
{
    return l->peer.captureAppSessionState().timeAtBeat(beat, quantum).count();
}

int link_app_set_tempo(struct link_peer *l, double bpm, int64_t host_us)
{
    try {
        auto s = l->peer.captureAppSessionState();
        s.setTempo(bpm, microseconds{host_us});
        l->peer.commitAppSessionState(s);
    } catch (...) {
        return -EIO;
    }
    return 0;
}

int link_app_request_beat_at(struct link_peer *l, double beat, int64_t host_us, double quantum)
{
    try {
        auto s = l->peer.captureAppSessionState();
        s.requestBeatAtTime(beat, microseconds{host_us}, quantum);
        l->peer.commitAppSessionState(s);
    } catch (...) {
        return -EIO;
    }
    return 0;
}

int link_app_set_playing(struct link_peer *l, bool playing, int64_t host_us)
{
    try {
        auto s = l->peer.captureAppSessionState();
        s.setIsPlaying(playing, microseconds{host_us});
        l->peer.commitAppSessionState(s);
    } catch (...) {
        return -EIO;
    }
    return 0;
}

} /* extern "C" */
