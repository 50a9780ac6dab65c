/* layer_check.c — the program each tt-layer-LAYER check links: nothing but
 * a main. CMake links it with the whole of one layer's library and only the
 * layers docs/ARCHITECTURE.md lets it use, so a call the wrong way (core
 * calling the store, the HTTP engine calling the API) is an undefined
 * reference at build time. */
int main(void) { return 0; }
