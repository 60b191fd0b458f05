/*
 * Velostream plugin SDK: AuditSink.
 *
 * Every authentication decision and every mutating API call is handed to
 * each AuditSink in the chain. `log` runs on the main loop and must not
 * block: a sink that writes to a slow place queues and writes elsewhere.
 */
#ifndef VELO_AUDIT_H
#define VELO_AUDIT_H

#include <stdint.h>

#include <velo/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

struct velo_audit_event {
    int64_t time_ms;         /* Unix epoch milliseconds */
    const char *who;         /* principal name, or "-" when unauthenticated */
    const char *action;      /* "auth.login", "http.POST", "apikey.create" */
    const char *resource;    /* "/api/apikeys", "user:alice" */
    const char *outcome;     /* "allow", "deny", "success", "failure" */
    const char *request_id;  /* may be NULL outside a request */
    const char *client_addr; /* may be NULL outside a request */
    const char *detail;      /* free text, may be NULL */
};

struct velo_audit_vtable {
    uint32_t size; /* sizeof(struct velo_audit_vtable) */
    int (*create)(struct velo_instance *ins, const void *config);
    void (*destroy)(struct velo_instance *ins);
    /** Required. The event is borrowed for the call.
     *  @return VELO_OK or VELO_ERR (counted, never fatal). */
    int (*log)(struct velo_instance *ins, const struct velo_audit_event *ev);
};

#ifdef __cplusplus
}
#endif

#endif /* VELO_AUDIT_H */
