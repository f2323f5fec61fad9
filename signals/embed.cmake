# cmake -DIN=<file> -DOUT=<file.c> -DSYM=<prefix> -P signals/embed.cmake
#
# Writes a C file defining `const unsigned char <prefix>_data[]` (the bytes
# of IN followed by a NUL, so it can also be read as a string) and
# `const size_t <prefix>_size` (without the NUL). Run at build time by a
# custom command, so editing IN rebuilds only this file.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR size "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# One output line per input line keeps the file readable by tools.
string(REPLACE "0x0a," "0x0a,\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp"
"/* Generated from ${IN} by signals/embed.cmake. Do not edit. */
#include <stddef.h>
extern const unsigned char ${SYM}_data[];
extern const size_t ${SYM}_size;
const unsigned char ${SYM}_data[] = {
${bytes}0x00};
const size_t ${SYM}_size = ${size};
")
file(RENAME "${OUT}.tmp" "${OUT}")
