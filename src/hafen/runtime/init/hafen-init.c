/*
 * hafen-init: the container's pid 1 for `hafen run --init` (Docker's docker-init role).
 *
 * Usage: hafen-init [--] COMMAND [ARG...]
 *
 * Runs COMMAND as its only direct child, forwards every catchable signal it receives to
 * that child (to its process group when the child leads one: it does when a terminal
 * is attached), reaps every zombie re-parented to it, and exits with the child's status:
 * its exit code, or 128 + the signal that killed it. Built static (no libc needed in
 * the image) by scripts/setup, or on first use by hafen.runtime.init_binary.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int ignored(int sig) {
    /* Signals a forwarder must not relay: they belong to the process itself, or
       cannot be caught, or are about our own terminal and children. */
    switch (sig) {
    case SIGKILL: case SIGSTOP: case SIGCHLD: case SIGTSTP: case SIGTTIN: case SIGTTOU:
    case SIGFPE: case SIGILL: case SIGSEGV: case SIGBUS: case SIGABRT: case SIGTRAP:
    case SIGSYS:
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--") == 0)
        first = 2;
    if (first >= argc) {
        fprintf(stderr, "usage: hafen-init [--] COMMAND [ARG...]\n");
        return 2;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);

    pid_t child = fork();
    if (child < 0) {
        perror("hafen-init: fork");
        return 1;
    }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        /* A child with a terminal gets its own process group in the foreground, so
           that ^C from the terminal reaches it (as docker-init/tini do). */
        if (isatty(STDIN_FILENO)) {
            setpgid(0, 0);
            signal(SIGTTOU, SIG_IGN);
            tcsetpgrp(STDIN_FILENO, getpid());
            signal(SIGTTOU, SIG_DFL);
        }
        execvp(argv[first], &argv[first]);
        fprintf(stderr, "hafen-init: exec %s: %s\n", argv[first], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }

    int status = 0;
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            perror("hafen-init: sigwaitinfo");
            return 1;
        }
        if (sig != SIGCHLD) {
            if (!ignored(sig))
                kill(child, sig);
            continue;
        }
        /* Reap everything that has exited: our child and any orphan. */
        for (;;) {
            int st;
            pid_t pid = waitpid(-1, &st, WNOHANG);
            if (pid <= 0)
                break;
            if (pid == child) {
                if (WIFEXITED(st))
                    status = WEXITSTATUS(st);
                else if (WIFSIGNALED(st))
                    status = 128 + WTERMSIG(st);
                /* Orphans still running are left to the runtime (it kills the cgroup). */
                return status;
            }
        }
    }
}
