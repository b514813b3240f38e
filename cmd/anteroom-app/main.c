/*
 * anteroom-app: the HTTPS application server. Everything but the process entry lives in
 * src/app/daemon.c, so tests can link it.
 */
#include "daemon.h"

int main(int argc, char **argv)
{
    return ar_app_main(argc, argv);
}
