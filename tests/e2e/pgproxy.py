#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""pgproxy.py LISTEN_PORT PG_PORT — a TCP proxy in front of PostgreSQL that
loses the answer to a COMMIT on demand.

Each SIGUSR1 arms one loss. The next simple-protocol COMMIT a client sends
is then handled in one of two ways, alternately: the first loss forwards
the COMMIT and drops the connection before the answer comes back (the
transaction landed, the client cannot know), the second drops the
connection without forwarding it (the transaction did not land). Either
way the client sees its connection fail inside COMMIT: the in-doubt case
the processor must resolve. Every loss is printed to stdout as one line.
"""
import asyncio
import signal
import sys

COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"

armed = 0
losses = 0


async def pump(reader, writer, watch, peer, conn):
    global armed, losses
    try:
        while True:
            data = await reader.read(65536)
            if not data or conn["cut"]:
                break
            if watch and armed and COMMIT in data:
                armed -= 1
                losses += 1
                landed = losses % 2 == 1
                # From here nothing goes back to the client.
                conn["cut"] = True
                if landed:
                    writer.write(data)
                    await writer.drain()
                    # Let the server commit before the line goes down.
                    await asyncio.sleep(0.3)
                print(f"lost COMMIT answer {losses} "
                      f"({'landed' if landed else 'not sent'})", flush=True)
                writer.close()
                peer.close()
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        peer.close()


async def serve(pg_port, client_reader, client_writer):
    try:
        pg_reader, pg_writer = await asyncio.open_connection("127.0.0.1", pg_port)
    except OSError:
        client_writer.close()
        return
    conn = {"cut": False}
    await asyncio.gather(
        pump(client_reader, pg_writer, True, client_writer, conn),
        pump(pg_reader, client_writer, False, pg_writer, conn))


def arm():
    global armed
    armed += 1


async def main():
    listen_port, pg_port = int(sys.argv[1]), int(sys.argv[2])
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, arm)
    server = await asyncio.start_server(
        lambda r, w: serve(pg_port, r, w), "127.0.0.1", listen_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
