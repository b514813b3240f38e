/*
 * anteroom-monitor: the write-only call-statistics endpoint. Everything but the process entry
 * lives in src/monitor/daemon.c, so tests can link it.
 */
#include "daemon.h"

int main(int argc, char **argv)
{
    return ar_monitor_main(argc, argv);
}
