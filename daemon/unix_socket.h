// The Unix stream sockets the daemon listens on (the control socket, the metrics socket).
#pragma once

#include <string>

#include "block/status.h"
#include "daemon/asio.h"

namespace ice::daemon {

// Opens `acceptor` listening on `path`: the socket is born mode 0600 (no window in which another
// user connects), its folder is created mode 0700 when missing, and a socket file nobody answers
// on (left by a daemon that died) is replaced. ENAMETOOLONG for a path sockaddr_un cannot hold;
// EADDRINUSE when another process answers on it; EEXIST when the path is not a socket. Messages
// name the socket as `what` ("control socket /run/ice/control.sock: …").
Status ListenPrivateUnixSocket(boost::asio::local::stream_protocol::acceptor& acceptor,
                               const std::string& path, const std::string& what);

}  // namespace ice::daemon
