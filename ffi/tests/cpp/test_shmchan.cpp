// The C++ test of include/shmchan.hpp, run by ffi/tests/c_api.rs under
// valgrind: RAII handles, exceptions, and the value-returning try_/_for
// forms, in one process. Each channel is removed by a guard, on every path.
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "shmchan.hpp"

using namespace std::chrono_literals;

namespace {

int passed = 0;

struct check_failed {
    int line;
    const char *what;
};

#define CHECK(cond)                                 \
    do {                                            \
        if (!(cond))                                \
            throw check_failed{__LINE__, #cond};    \
    } while (0)

// `f` must throw shmchan::error with `code`.
void expect_error(shmchan_status code, const std::function<void()> &f, int line)
{
    try {
        f();
    } catch (const shmchan::error &e) {
        if (e.code() == code)
            return;
        std::fprintf(stderr, "line %d: %s\n", line, e.what());
    }
    throw check_failed{line, "expected an error"};
}

#define EXPECT_ERROR(code, stmt) expect_error(code, [&] { stmt; }, __LINE__)

// A private channel, removed when the test ends however it ends.
struct test_channel {
    shmchan::channel chan;
    explicit test_channel(uint64_t capacity = 4096)
    {
        shmchan_options o = shmchan::channel::default_options();
        o.capacity = capacity;
        chan = shmchan::channel::create(SHMCHAN_KEY_PRIVATE, &o);
    }
    ~test_channel()
    {
        if (chan)
            shmchan_remove(chan.release());
    }
};

std::string text(const std::vector<unsigned char> &b)
{
    return std::string(b.begin(), b.end());
}

void test_send_and_receive()
{
    test_channel t;
    shmchan::receiver rx = t.chan.make_receiver();
    shmchan::sender tx = t.chan.make_sender();
    CHECK(!rx.try_recv());
    CHECK(!rx.recv_for(1ms));
    tx.send("hello");
    CHECK(tx.try_send("world"));
    CHECK(tx.send_for(std::string(3000, 'x'), 1s)); // larger than the buffer's first size
    CHECK(text(rx.recv()) == "hello");
    std::vector<unsigned char> buf;
    rx.recv(buf);
    CHECK(text(buf) == "world");
    auto big = rx.recv_for(1s);
    CHECK(big && big->size() == 3000);

    while (tx.try_send(std::string(1000, 'f'))) {
    }
    CHECK(!tx.send_for("more", 1ms));
    CHECK(!tx.try_reserve(1000));
    while (rx.try_recv()) {
    }
    passed++;
}

void test_zero_copy()
{
    test_channel t;
    shmchan::receiver rx = t.chan.make_receiver();
    shmchan::sender tx = t.chan.make_sender();
    {
        shmchan::reservation r = tx.reserve(4);
        std::memcpy(r.data(), "lost", 4);
    } // destroyed uncommitted: nothing sent
    shmchan::reservation r = tx.reserve(5);
    std::memcpy(r.data(), "saved", 5);
    EXPECT_ERROR(SHMCHAN_E_PENDING, tx.send("while reserved"));
    r.commit();
    {
        shmchan::message m = rx.recv_ref();
        CHECK(m.view() == "saved");
        CHECK(m.from().session == tx.id().session);
        EXPECT_ERROR(SHMCHAN_E_PENDING, rx.try_recv());
    } // released
    CHECK(!rx.try_recv_ref());
    tx.send("from");
    auto [msg, from] = rx.recv_from();
    CHECK(text(msg) == "from" && from.lane == tx.id().lane);
    passed++;
}

void test_errors()
{
    test_channel t;
    shmchan::receiver rx = t.chan.make_receiver();
    EXPECT_ERROR(SHMCHAN_E_ROLE_TAKEN, t.chan.make_receiver());
    EXPECT_ERROR(SHMCHAN_E_NOT_FOUND, shmchan::channel::open_id(0x7ffffff0));
    {
        shmchan::sender tx = t.chan.make_sender();
        EXPECT_ERROR(SHMCHAN_E_MESSAGE_TOO_LARGE, tx.send(std::string(t.chan.max_message_len() + 1, 'x')));
        tx.send("last");
    } // closed: the receiver drains, then learns the sender is gone
    CHECK(text(rx.recv()) == "last");
    bool ended = false;
    try {
        rx.recv();
    } catch (const shmchan::disconnected &) {
        ended = true;
    }
    CHECK(ended);

    try {
        shmchan_options o = shmchan::channel::default_options();
        o.flags = 1u << 30;
        shmchan::channel::create(SHMCHAN_KEY_PRIVATE, &o);
        CHECK(false);
    } catch (const shmchan::error &e) {
        CHECK(e.code() == SHMCHAN_E_INVALID_ARGUMENT && e.os_errno() == 0);
        CHECK(std::string(e.what()).find("flags") != std::string::npos);
    }
    passed++;
}

void test_moves_and_remove()
{
    test_channel t;
    shmchan::channel other = shmchan::channel::open_id(t.chan.id());
    CHECK(other.id() == t.chan.id() && other.capacity() == 4096);
    shmchan::sender a = other.make_sender();
    shmchan::sender b = std::move(a);
    CHECK(!a && b);
    other.reset(); // the sender outlives its channel handle
    shmchan::receiver rx = t.chan.make_receiver();
    b.send("moved");
    CHECK(text(rx.recv()) == "moved");
    t.chan.remove();
    CHECK(!t.chan);
    EXPECT_ERROR(SHMCHAN_E_REMOVED, b.send("late"));
    passed++;
}

} // namespace

int main()
{
    try {
        test_send_and_receive();
        test_zero_copy();
        test_errors();
        test_moves_and_remove();
    } catch (const check_failed &f) {
        std::fprintf(stderr, "test_shmchan.cpp:%d: check failed: %s\n", f.line, f.what);
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        return 1;
    }
    std::printf("cpp: %d passed, 0 failed\n", passed);
    return 0;
}
