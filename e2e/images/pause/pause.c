/*
 * The sandbox ("pause") process of every pod: it holds the pod's namespaces,
 * so it must do nothing, forever, as PID 1. As PID 1 it also inherits orphans
 * and must reap them, and it must exit promptly on SIGTERM/SIGINT because the
 * kernel ignores signals a PID 1 has no handler for. Same behaviour as
 * kubernetes' build/pause/linux/pause.c; kept here so the image does not
 * depend on whether the Go module cache happens to hold k8s.io/kubernetes.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#ifndef VERSION
#define VERSION HEAD
#endif

static void sigdown(int signo) {
	psignal(signo, "Shutting down, got signal");
	exit(0);
}

static void sigreap(int signo) {
	(void)signo;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(int argc, char **argv) {
	for (int i = 1; i < argc; ++i) {
		if (!strcasecmp(argv[i], "-v")) {
			printf("pause.c %s\n", STR(VERSION));
			return 0;
		}
	}
	if (getpid() != 1)
		fprintf(stderr, "Warning: pause should be the first process\n");
	if (sigaction(SIGINT, &(struct sigaction){.sa_handler = sigdown}, NULL) < 0)
		return 1;
	if (sigaction(SIGTERM, &(struct sigaction){.sa_handler = sigdown}, NULL) < 0)
		return 2;
	if (sigaction(SIGCHLD, &(struct sigaction){.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP}, NULL) < 0)
		return 3;
	for (;;)
		pause();
	return 42;
}
