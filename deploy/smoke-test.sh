#!/usr/bin/env bash
# Live check of deploy/nginx/*.conf: starts gunicorn (SQLite, weak Argon2 for speed) and
# nginx with the two site files (ports, certificate and paths swapped for temporary ones)
# and checks TLS, the redirect, static files, reporter and staff routes, the 1 MiB / 110 MiB
# body limits with a streamed 3 MB upload, the onion front (reporter routes only), that only
# staff requests are logged and that nginx spooled nothing to its temp directories.
# Needs nginx, openssl and curl; changes nothing outside a temporary directory.
set -euo pipefail
R=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d); trap 'kill $(cat $T/gpid) 2>/dev/null; nginx -s quit -c $T/nginx.conf -p $T 2>/dev/null; sleep 0.5; rm -rf $T' EXIT
free() { $R/.venv/bin/python -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
G=$(free); P80=$(free); P443=$(free); PON=$(free)
export WHISTLE_DATABASE_URL=sqlite:///$T/w.db WHISTLE_KEYS_DIR=$T/keys WHISTLE_ARGON2_MEMORY_KIB=1024 WHISTLE_ARGON2_ITERATIONS=1
cd $R
.venv/bin/flask --app app init --recovery-out $T/rec.txt >/dev/null 2>&1
for n in a b; do echo "correct horse battery staple" | .venv/bin/flask --app app reviewer add --name $n --email $n@example.org --password-stdin >/dev/null; done
.venv/bin/gunicorn -c deploy/gunicorn.conf.py -b 127.0.0.1:$G -w 1 --chdir $R -p $T/gpid app:app 2>$T/g.log &
mkdir -p $T/logs
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=whistle.example.org -keyout $T/key.pem -out $T/cert.pem 2>/dev/null
sed -e "s|/etc/letsencrypt/live/whistle.example.org/fullchain.pem|$T/cert.pem|" -e "s|/etc/letsencrypt/live/whistle.example.org/privkey.pem|$T/key.pem|" \
    -e "s|/var/log/nginx/|$T/logs/|g" -e "s|listen 80;|listen 127.0.0.1:$P80;|" -e "s|listen 443 ssl http2;|listen 127.0.0.1:$P443 ssl http2;|" \
    -e "/listen \[::\]/d" -e "s|server 127.0.0.1:8000;|server 127.0.0.1:$G;|" -e "s|/opt/whistle/static/|$R/static/|" deploy/nginx/whistle.conf > $T/whistle.conf
sed -e "s|/var/log/nginx/|$T/logs/|g" -e "s|listen 127.0.0.1:8080;|listen 127.0.0.1:$PON;|" -e "s|/opt/whistle/static/|$R/static/|" deploy/nginx/whistle-onion.conf > $T/onion.conf
cat > $T/nginx.conf <<EOC
pid $T/nginx.pid;
error_log $T/logs/error.log;
$( [ "$(id -u)" = 0 ] && echo "user root root;")
events {}
http {
    include /etc/nginx/mime.types;
    client_body_temp_path $T/body; proxy_temp_path $T/proxy; fastcgi_temp_path $T/fcgi; uwsgi_temp_path $T/uwsgi; scgi_temp_path $T/scgi;
    include $T/whistle.conf;
    include $T/onion.conf;
}
EOC
nginx -c $T/nginx.conf -p $T
sleep 1.5
H="https://127.0.0.1:$P443"
fail=0
expect() { if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: got '$2', expected '$3'"; fail=1; fi; }
code() { curl -sk -o /dev/null -w '%{http_code}' "$@"; }
J='Content-Type: application/json'
expect "http redirects to https" "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$P80/report)" 301
expect "healthz over TLS" "$(curl -sk $H/healthz)" '{"status":"ok"}'
expect "static files from nginx" "$(code $H/static/style.css)" 200
expect "submit over TLS" "$(curl -sk -o $T/r.json -w '%{http_code}' -H "$J" -d '{"category":"conduct","details":"via nginx"}' $H/api/v1/concerns)" 201
TOKEN=$($R/.venv/bin/python -c "import json;print(json.load(open('$T/r.json'))['token'])")
expect "status over TLS" "$(code -H "$J" -d "{\"token\":\"$TOKEN\"}" $H/api/v1/status)" 200
expect "reviewer login over TLS" "$(code -H "$J" -d '{"email":"a@example.org","password":"correct horse battery staple"}' $H/api/v1/auth/login)" 200
head -c 3000000 /dev/urandom > $T/big.bin
expect "3 MB attachment streamed to /api/v1/concerns" "$(code -F 'concern={"category":"conduct","details":"with a file"};type=application/json' -F "attachment=@$T/big.bin;filename=x.bin" $H/api/v1/concerns)" 201
expect "3 MB elsewhere refused by nginx (1 MiB)" "$(code -F "attachment=@$T/big.bin" $H/api/v1/intake)" 413
O="http://127.0.0.1:$PON"
expect "onion: submit" "$(code -H "$J" -d '{"category":"conduct","details":"via onion"}' $O/api/v1/concerns)" 201
expect "onion: report page" "$(code $O/report)" 200
expect "onion: no reviewer pages" "$(code $O/reviewer/login)" 404
expect "onion: no reviewer API" "$(code -X POST $O/api/v1/auth/login)" 404
sleep 0.3
expect "only the staff request was logged" "$(wc -l < $T/logs/whistle-staff.log | tr -d ' ')" 1
expect "staff log line is the login" "$(grep -c 'POST /api/v1/auth/login' $T/logs/whistle-staff.log)" 1
expect "no access log for reporter routes" "$(ls $T/logs | grep -vc -e error -e staff || true)" 0
expect "nothing spooled to nginx temp files" "$(find $T/body $T/proxy -type f 2>/dev/null | wc -l | tr -d ' ')" 0
exit $fail
