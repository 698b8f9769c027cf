# Varnish 7.1 in front of the benchmark origin, started by bench/run as
#   varnishd -F -a 127.0.0.1:PORT -f THIS.vcl -s malloc,256m -n WORKDIR
# with default parameters.  Everything else is Varnish's built-in VCL:
# freshness from the origin's Cache-Control (like freshcached's
# `ttl: origin`), request coalescing on the waiting list, client
# If-None-Match answered from the cache, conditional fetches for stale
# objects kept in grace/keep.  As shipped, Varnish marks responses with
# `Cache-Control: no-cache` hit-for-miss (uncacheable), so the HTML scenario
# fetches a full 200 from the origin on every request.
vcl 4.1;

backend origin {
    .host = "127.0.0.1";
    .port = "@ORIGIN_PORT@";
    .connect_timeout = 2s;
    .first_byte_timeout = 30s;
}

sub vcl_deliver {
    # The same information as freshcached's Cache-Status and nginx's
    # X-Cache-Status; the bench checks it before measuring.
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
