/*
 * Velostream plugin SDK umbrella header. A plugin includes this and nothing
 * else from the server.
 */
#ifndef VELO_VELO_H
#define VELO_VELO_H

#include <velo/log.h>
#include <velo/value.h>
#include <velo/plugin.h>
#include <velo/host.h>
#include <velo/connector.h>
#include <velo/auth.h>
#include <velo/audit.h>
#include <velo/cluster.h>
#include <velo/app.h>

#endif /* VELO_VELO_H */
