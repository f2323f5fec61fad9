/*
 * demo.h -- `encore demo`: embedded broker + generator + pipeline + reader,
 * in one process, for a newcomer's first minute.
 */
#ifndef ENC_DEMO_H
#define ENC_DEMO_H

/** Runs the demo; argv[0] is "demo". Returns the process exit code. */
int enc_demo_main(int argc, char **argv);

#endif /* ENC_DEMO_H */
