// The one header that includes Boost.Asio. Boost 1.74's Asio needs <utility> first in C++20
// mode with GCC 12 ("'exchange' is not a member of 'std'" in awaitable.hpp).
#pragma once

#include <utility>

#include <boost/asio.hpp>
