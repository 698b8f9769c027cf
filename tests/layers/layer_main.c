/*
 * layer_main.c — the program each layer is linked whole into, with only
 * the layers below it (src/meson.build).  It calls nothing: the point is
 * the link, which fails if any object of the layer calls up into a layer
 * above it.
 */
int main(void)
{
    return 0;
}
