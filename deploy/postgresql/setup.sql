-- Run once as the postgres superuser: sudo -u postgres psql -f deploy/postgresql/setup.sql
-- (set the password with \password whistle afterwards, and put it in whistle.env).
CREATE ROLE whistle LOGIN;
CREATE DATABASE whistle OWNER whistle ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE whistle FROM PUBLIC;
