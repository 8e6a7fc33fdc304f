parse_wrk() {
  awk '
    function ms(v,   n, u) {
      n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") return n / 1000
      if (u == "ms") return n
      if (u == "s")  return n * 1000
      if (u == "m")  return n * 60000
      if (u == "h")  return n * 3600000
      return "nan"
    }
    $1 == "50%"             { p50 = ms($2) }
    $1 == "99%"             { p99 = ms($2) }
    / requests in /         { reqs = $1 }
    $1 == "Requests/sec:"   { rps = $2 }
    /Non-2xx or 3xx responses:/ { errs += $NF }
    /Socket errors:/        { errs += $4 + $6 + $8 + $10 }
    END {
      if (rps == "" || reqs == "" || p50 == "" || p99 == "") exit 1
      printf "%s %.3f %.3f %d %d\n", rps, p50, p99, reqs, errs
    }' "$1"
}
