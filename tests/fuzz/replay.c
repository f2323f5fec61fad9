/*
 * replay.c -- a main() for a fuzz harness without libFuzzer.
 *
 *   fuzz_<name>_replay PATH...
 *
 * Feeds every regular file under each PATH (a file or a directory, walked
 * recursively; names starting with '.' are skipped) through the harness's
 * LLVMFuzzerTestOneInput, in sorted order, one at a time. A harness that
 * finds a problem aborts, so the test fails naming the file it was on
 * (printed before each input). ctest runs it over the seed corpus and the
 * regression inputs of every harness in every build, with any compiler, so
 * a crash that fuzzing once found stays fixed.
 *
 * A PATH that does not exist is an error (a mistyped corpus path must not
 * pass by testing nothing), and so is finding no input at all.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define REPLAY_MAX_INPUT ((size_t)16 << 20)

static int replay_file(const char *path) {
        FILE *fp = fopen(path, "rb");
        if (!fp) {
                fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
                return -1;
        }
        uint8_t *buf = malloc(REPLAY_MAX_INPUT);
        if (!buf) {
                fclose(fp);
                fprintf(stderr, "replay: out of memory\n");
                return -1;
        }
        size_t n = fread(buf, 1, REPLAY_MAX_INPUT, fp);
        int bad = ferror(fp) || !feof(fp);
        fclose(fp);
        if (bad) {
                free(buf);
                fprintf(stderr, "replay: %s: read error or over %zu bytes\n",
                        path, REPLAY_MAX_INPUT);
                return -1;
        }
        /* An exact-size copy, so ASan sees a read past the input's end. */
        uint8_t *in = malloc(n ? n : 1);
        if (!in) {
                free(buf);
                return -1;
        }
        memcpy(in, buf, n);
        free(buf);
        fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
        LLVMFuzzerTestOneInput(in, n);
        free(in);
        return 0;
}

static int cmp_names(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns the number of inputs run, or -1 on error. */
static long replay_path(const char *path) {
        struct stat sb;
        if (stat(path, &sb) != 0) {
                fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
                return -1;
        }
        if (S_ISREG(sb.st_mode))
                return replay_file(path) == 0 ? 1 : -1;
        if (!S_ISDIR(sb.st_mode))
                return 0;

        DIR *d = opendir(path);
        if (!d) {
                fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
                return -1;
        }
        char **names = NULL;
        size_t cnt = 0, cap = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (cnt == cap) {
                        cap = cap ? cap * 2 : 64;
                        char **nn = realloc(names, cap * sizeof(*names));
                        if (!nn)
                                abort();
                        names = nn;
                }
                names[cnt] = strdup(de->d_name);
                if (!names[cnt])
                        abort();
                cnt++;
        }
        closedir(d);
        if (cnt)
                qsort(names, cnt, sizeof(*names), cmp_names);

        long total = 0;
        for (size_t i = 0; i < cnt; i++) {
                size_t len = strlen(path) + strlen(names[i]) + 2;
                char *full = malloc(len);
                if (!full)
                        abort();
                snprintf(full, len, "%s/%s", path, names[i]);
                long n = total >= 0 ? replay_path(full) : 0;
                total = n < 0 ? -1 : total + n;
                free(full);
                free(names[i]);
        }
        free(names);
        return total;
}

int main(int argc, char **argv) {
        long total = 0;
        if (argc < 2) {
                fprintf(stderr, "usage: %s PATH...\n", argv[0]);
                return 2;
        }
        LLVMFuzzerInitialize(&argc, &argv);
        for (int i = 1; i < argc; i++) {
                long n = replay_path(argv[i]);
                if (n < 0)
                        return 1;
                total += n;
        }
        if (total == 0) {
                fprintf(stderr, "replay: no inputs found\n");
                return 1;
        }
        fprintf(stderr, "replay: %ld inputs ran clean\n", total);
        return 0;
}
