/* critest's stand-ins for its upstream nginx, httpd, pause and nonewprivs images, one
 * static program that acts by the name it runs as (scripts/critest_images.py builds it):
 *   nginx       re-runs itself as "nginx: master process ..." (critest greps pid 1's
 *               command line), writes /var/run/nginx.pid and serves HTTP on $PORT (80)
 *   httpd       says "httpd -D FOREGROUND" on stderr, as Apache logs its command line,
 *               and serves HTTP on port 80
 *   pause       waits for SIGTERM or SIGINT, reaping children (a pod's PID 1)
 *   nonewprivs  installed set-uid root: prints its effective uid */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char page[] = "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n"
                           "Content-Length: 3\r\n\r\nok\n";

static int serve(int port) {
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 64)) {
        perror("listen");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        char request[4096];
        int conn = accept(fd, NULL, NULL);
        if (conn < 0)
            continue;
        if (read(conn, request, sizeof request) > 0 && write(conn, page, sizeof page - 1) < 0)
            perror("write");
        close(conn);
    }
}

static void leave(int sig) { _exit(sig == SIGTERM || sig == SIGINT ? 0 : 1); }

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    (void)argc;
    if (strcmp(name, "nonewprivs") == 0) {
        printf("Effective uid: %d\n", (int)geteuid());
        return 0;
    }
    if (strcmp(name, "pause") == 0) {
        signal(SIGTERM, leave);
        signal(SIGINT, leave);
        signal(SIGCHLD, reap);
        for (;;)
            pause();
    }
    if (strcmp(name, "httpd") == 0) {
        fprintf(stderr, "AH00094: Command line: 'httpd -D FOREGROUND'\n");
        return serve(80);
    }
    if (strcmp(name, "nginx") == 0) {
        /* Its own path, so the process keeps "nginx" as its name for pidof. */
        char self[4096], *title[] = {"nginx: master process nginx -g daemon off;", NULL};
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n < 0) {
            perror("/proc/self/exe");
            return 1;
        }
        self[n] = 0;
        execv(self, title);
        perror("execv");
        return 1;
    }
    if (strncmp(argv[0], "nginx: master", 13) == 0) {
        FILE *pid = fopen("/var/run/nginx.pid", "w");
        if (pid == NULL || fprintf(pid, "%d\n", (int)getpid()) < 0 || fclose(pid)) {
            perror("/var/run/nginx.pid");
            return 1;
        }
        return serve(getenv("PORT") ? atoi(getenv("PORT")) : 80);
    }
    fprintf(stderr, "%s: run me as nginx, httpd, pause or nonewprivs\n", argv[0]);
    return 2;
}
