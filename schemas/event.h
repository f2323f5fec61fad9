/*
 * event.h -- the in-memory forms of the two records encore speaks:
 * PlayEvent (input) and RewardUpdate (output). The Avro schemas in
 * play_event.avsc and reward_update.avsc are the wire forms; codec.h maps
 * between the two.
 */
#ifndef ENC_EVENT_H
#define ENC_EVENT_H

#include "enc.h"

/* Caps on strings read from the wire. A longer id is an invalid record
 * (ENC_ERR_TOO_LARGE), never an unbounded allocation. */
#define ENC_ID_MAX 256        /* event, user, track, artist, rec ids */
#define ENC_LABEL_MAX 64      /* surface, cohort */

typedef enum enc_reason_end_e {
        ENC_END_TRACK_DONE = 0,
        ENC_END_FORWARD,
        ENC_END_BACK,
        ENC_END_END_PLAY,
        ENC_END_LOGOUT,
        ENC_END_UNKNOWN,
        ENC_END__CNT
} enc_reason_end_t;

typedef enum enc_source_e {
        ENC_SRC_RECOMMENDATION = 0,
        ENC_SRC_SEARCH,
        ENC_SRC_LIBRARY,
        ENC_SRC_PLAYLIST,
        ENC_SRC_RADIO,
        ENC_SRC_OTHER,
        ENC_SRC__CNT
} enc_source_t;

const char *enc_reason_end_name(enc_reason_end_t r); /* "TRACK_DONE", ... */
const char *enc_source_name(enc_source_t s);         /* "RECOMMENDATION" */

/*
 * A decoded play event. Strings are NUL-terminated. Who owns them depends on
 * where the event came from: the decoder's events borrow from the decoder
 * until its next call; enc_event_dup() makes an owned, single-allocation copy.
 * recommendation_id and cohort may be NULL.
 */
typedef struct enc_event_s {
        const char *event_id;
        const char *user_id;
        const char *track_id;
        const char *artist_id;
        int64_t event_time;        /* ms since epoch, UTC */
        int64_t ms_played;
        int64_t track_duration_ms;
        enc_reason_end_t reason_end;
        enc_source_t source;
        const char *surface;
        const char *recommendation_id; /* nullable */
        const char *cohort;            /* nullable */
} enc_event_t;

/** Deep copy of @p ev in one allocation; caller frees with free(). */
enc_event_t *enc_event_dup(const enc_event_t *ev);

/** Checks field values (not encoding): ids present and within caps,
 *  valid UTF-8, non-negative and plausible durations, event time after
 *  2006-01-01. On failure returns ENC_ERR_INVALID_FIELD or
 *  ENC_ERR_TOO_LARGE and names the field in errstr. */
enc_err_t enc_event_validate(const enc_event_t *ev, char *errstr,
                             size_t errstr_size) ENC_WUR;

#define ENC_COMPONENTS_MAX 16
#define ENC_SIGNAL_NAME_MAX 48

typedef struct enc_component_s {
        const char *name; /* borrowed; static or owned by the signal */
        double value;
} enc_component_t;

/*
 * A reward update as signals emit it. All pointers are borrowed for the
 * duration of the emit call. update_id is filled by the engine
 * (enc_update_make_id) from user, signal, version, subject and sequence,
 * so the same input always yields the same id.
 */
typedef struct enc_update_s {
        char update_id[33]; /* 32 lowercase hex chars + NUL */
        const char *user_id;
        const char *signal;
        int32_t signal_version;
        const char *subject;           /* nullable */
        const char *recommendation_id; /* nullable */
        int64_t window_start;
        int64_t window_end;
        double value;
        double delta;
        bool has_estimate;
        double estimate_mean;
        double estimate_variance;
        int32_t observed_days;
        int32_t horizon_days;
        bool final;
        int64_t event_time;
        int64_t sequence; /* per (user, signal, version, subject), from 1 */
        const char *cohort; /* nullable */
        int component_cnt;
        enc_component_t components[ENC_COMPONENTS_MAX];
} enc_update_t;

/** Fills up->update_id: XXH3-128 over (user, signal, version, subject,
 *  sequence), lowercase hex. */
void enc_update_make_id(enc_update_t *up);

#endif /* ENC_EVENT_H */
