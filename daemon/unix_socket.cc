#include "daemon/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace ice::daemon {
namespace {

Status Errno(int e, const std::string& what) {
  return Status::Error(e, what + ": " + std::strerror(e));
}

// A socket file nobody answers on is left over from a daemon that died: remove it.
Status ClearStaleSocket(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Status::Ok();
  if (!S_ISSOCK(st.st_mode))
    return Status::Error(EEXIST, what + " path " + path + " exists and is not a socket");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno(errno, "socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  const bool answered = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  if (answered) return Status::Error(EADDRINUSE, "another daemon serves " + path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno(errno, "unlink " + path);
  return Status::Ok();
}

}  // namespace

Status ListenPrivateUnixSocket(boost::asio::local::stream_protocol::acceptor& acceptor,
                               const std::string& path, const std::string& what) {
  namespace asio = boost::asio;
  if (path.size() >= sizeof(sockaddr_un{}.sun_path))
    return Status::Error(ENAMETOOLONG, what + " path is too long: " + path);
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code fec;
  if (!dir.empty() && !std::filesystem::exists(dir, fec)) {
    std::filesystem::create_directories(dir, fec);
    if (fec)
      return Status::Error(fec.value(), "cannot create " + dir.string() + ": " + fec.message());
    ::chmod(dir.c_str(), 0700);
  }
  ICE_RETURN_IF_ERROR(ClearStaleSocket(path, what));
  boost::system::error_code ec;
  acceptor.open(asio::local::stream_protocol(), ec);
  const mode_t old = ::umask(0177);
  if (!ec) acceptor.bind(asio::local::stream_protocol::endpoint(path), ec);
  ::umask(old);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::Error(ec.value(), what + " " + path + ": " + ec.message());
  if (::chmod(path.c_str(), 0600) != 0) return Errno(errno, "chmod " + path);
  return Status::Ok();
}

}  // namespace ice::daemon
