/*
 * cluster_scripts.h — the Lua scripts every step that touches the
 * cluster's shared state runs in Redis, each one atomic server-side.
 * Loaded with SCRIPT LOAD when a session starts, called with EVALSHA.
 *
 * The keys, all under one hash tag so a Redis Cluster keeps them in one
 * slot ("freshcache:{NAME}:..."):
 *
 *   gen        hash    "global" / "policy:NAME" -> the cluster's generations
 *   events     stream  every purge: o=origin node, k=kind, a=argument,
 *                      s=soft, g=new generation, t=Redis time (ms)
 *   nodes      zset    node -> Redis time (ms) of its last heartbeat
 *   info       hash    node -> "GENERATION POLICY=N ..." at its last heartbeat
 *   inst       hash    node -> the process (instance token) using the name
 *   run        string  a token set once per Redis dataset: a new one means
 *                      Redis lost its data
 *   acks:NODE  stream  acknowledgements of NODE's purges: e=event id,
 *                      n=node, c=objects purged
 */
#ifndef FRESHCACHE_CLUSTER_SCRIPTS_H
#define FRESHCACHE_CLUSTER_SCRIPTS_H

enum cluster_script {
    SCRIPT_SYNC = 0,    /* join: raise the cluster's numbers to ours, read them back */
    SCRIPT_HEARTBEAT,   /* liveness, and the node table */
    SCRIPT_PURGE,       /* a generation bump and/or a purge event, and the live nodes */
    SCRIPT_ACK,         /* tell a purge's origin we applied it */
    SCRIPT_LEAVE,       /* a clean stop: no longer live */
    N_SCRIPTS
};

const char *cluster_script_source(enum cluster_script s);

#endif
