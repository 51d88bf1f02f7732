#!/usr/bin/env bash
# Check deploy/nginx/*.conf with `nginx -t`, using a throwaway self-signed certificate
# and log/temp paths in a temporary directory. Needs nginx and openssl; changes nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/logs"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=whistle.example.org \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
sed -e "s|/etc/letsencrypt/live/whistle.example.org/fullchain.pem|$tmp/cert.pem|" \
    -e "s|/etc/letsencrypt/live/whistle.example.org/privkey.pem|$tmp/key.pem|" \
    -e "s|/run/whistle-nginx-body|$tmp/body|" \
    -e "s|/var/log/nginx/|$tmp/logs/|g" "$here/nginx/whistle.conf" > "$tmp/whistle.conf"
sed -e "s|/var/log/nginx/|$tmp/logs/|g" -e "s|/run/whistle-nginx-body|$tmp/body|" \
    "$here/nginx/whistle-onion.conf" > "$tmp/whistle-onion.conf"
cat > "$tmp/nginx.conf" <<EOF
pid $tmp/nginx.pid;
error_log $tmp/logs/error.log;
events {}
http {
    include /etc/nginx/mime.types;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    include $tmp/whistle.conf;
    include $tmp/whistle-onion.conf;
}
EOF
nginx -t -c "$tmp/nginx.conf" -p "$tmp"
