// shmchan.hpp: a thin C++17 layer over shmchan.h: RAII handles that close
// themselves, and exceptions for errors. Header-only: it needs libshmchan
// (`pkg-config --cflags --libs shmchan`) and nothing else; the C header
// alone is enough for C++ too.
//
// Errors throw shmchan::error (code(), os_errno(), what() from
// shmchan_last_error_message); a peer gone throws its subclass
// shmchan::disconnected, so a receive loop ends with
//     catch (const shmchan::disconnected&) {}
// The outcomes that are not failures come back as values instead: the
// try_ forms give std::nullopt (or false) when the channel is empty (or
// full), the _for forms when time runs out.
//
// Threads: as in shmchan.h. A channel may be used by several threads at
// once; a sender, a receiver, a reservation or a message by one thread at a
// time. Moving a handle moves ownership; a moved-from handle is empty.
#ifndef SHMCHAN_HPP
#define SHMCHAN_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shmchan.h"

namespace shmchan {

// A failed call: its status code, the OS errno if any, and the library's
// message.
class error : public std::runtime_error {
public:
    explicit error(shmchan_status code)
        : std::runtime_error(std::string(shmchan_strerror(code)) + ": " + shmchan_last_error_message()),
          code_(code), errno_(shmchan_last_errno())
    {
    }
    shmchan_status code() const noexcept { return code_; }
    int os_errno() const noexcept { return errno_; }

private:
    shmchan_status code_;
    int errno_;
};

// SHMCHAN_E_DISCONNECTED: the peer this handle has seen is gone (for a
// receiver, after its last message). Not sticky: a new peer may attach.
class disconnected : public error {
public:
    disconnected() : error(SHMCHAN_E_DISCONNECTED) {}
};

namespace detail {

[[noreturn]] inline void raise(shmchan_status s)
{
    if (s == SHMCHAN_E_DISCONNECTED)
        throw disconnected();
    throw error(s);
}

inline void check(shmchan_status s)
{
    if (s != SHMCHAN_OK)
        raise(s);
}

// true for SHMCHAN_OK, false for `expected` (empty, full or timed out).
inline bool check_or(shmchan_status s, shmchan_status expected)
{
    if (s == SHMCHAN_OK)
        return true;
    if (s == expected)
        return false;
    raise(s);
}

inline uint64_t nanos(std::chrono::nanoseconds t)
{
    return t.count() < 0 ? 0 : static_cast<uint64_t>(t.count());
}

// A moveable owner of one C handle, closed by `Close` on destruction.
template <class H, shmchan_status (*Close)(H *)>
class handle {
public:
    handle() noexcept = default;
    explicit handle(H *h) noexcept : h_(h) {}
    handle(handle &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    handle &operator=(handle &&o) noexcept
    {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    handle(const handle &) = delete;
    handle &operator=(const handle &) = delete;
    ~handle() { reset(); }

    // The C handle, still owned by this object.
    H *get() const noexcept { return h_; }
    // Gives the C handle up: the caller closes it.
    H *release() noexcept { return std::exchange(h_, nullptr); }
    explicit operator bool() const noexcept { return h_ != nullptr; }
    // Closes the handle now (a no-op when empty).
    void reset() noexcept
    {
        if (h_)
            Close(std::exchange(h_, nullptr)); // can only fail for a bad handle
    }

private:
    H *h_ = nullptr;
};

} // namespace detail

// A message reserved in the ring by sender::reserve: write data()[0..size()),
// then commit(). Destroyed uncommitted, it sends nothing.
class reservation {
public:
    reservation(reservation &&o) noexcept
        : tx_(std::exchange(o.tx_, nullptr)), data_(o.data_), size_(o.size_)
    {
    }
    reservation &operator=(reservation &&) = delete;
    reservation(const reservation &) = delete;
    ~reservation()
    {
        if (tx_)
            shmchan_cancel(tx_);
    }
    unsigned char *data() const noexcept { return static_cast<unsigned char *>(data_); }
    std::size_t size() const noexcept { return size_; }
    // Publishes the message: the receiver can see it once this returns.
    void commit()
    {
        detail::check(shmchan_commit(std::exchange(tx_, nullptr)));
    }

private:
    friend class sender;
    reservation(shmchan_sender *tx, void *data, std::size_t size) : tx_(tx), data_(data), size_(size) {}
    shmchan_sender *tx_;
    void *data_;
    std::size_t size_;
};

// The sending side of a channel (one lane). One thread at a time.
class sender : public detail::handle<shmchan_sender, shmchan_sender_close> {
public:
    using handle::handle;

    // Sends one message, waiting while the ring is full.
    void send(const void *data, std::size_t len) { detail::check(shmchan_send(get(), data, len)); }
    void send(std::string_view s) { send(s.data(), s.size()); }
    // Sends if there is room now; false if the ring is full.
    bool try_send(const void *data, std::size_t len)
    {
        return detail::check_or(shmchan_try_send(get(), data, len), SHMCHAN_E_FULL);
    }
    bool try_send(std::string_view s) { return try_send(s.data(), s.size()); }
    // Sends, waiting at most `timeout` for room; false if it ran out.
    bool send_for(std::string_view s, std::chrono::nanoseconds timeout)
    {
        return detail::check_or(shmchan_send_timeout(get(), s.data(), s.size(), detail::nanos(timeout)),
                                SHMCHAN_E_TIMEOUT);
    }
    // Reserves `len` bytes of payload, waiting while the ring is full.
    reservation reserve(std::size_t len)
    {
        void *data = nullptr;
        detail::check(shmchan_reserve(get(), len, &data));
        return reservation(get(), data, len);
    }
    // Reserves if there is room now.
    std::optional<reservation> try_reserve(std::size_t len)
    {
        void *data = nullptr;
        if (!detail::check_or(shmchan_try_reserve(get(), len, &data), SHMCHAN_E_FULL))
            return std::nullopt;
        return reservation(get(), data, len);
    }
    // This sender's lane and session.
    shmchan_sender_id id() const
    {
        shmchan_sender_id out{};
        detail::check(shmchan_sender_get_id(get(), &out));
        return out;
    }
};

// A message read in place by receiver::recv_ref: valid, and unconsumed,
// until this object is destroyed (which releases it).
class message {
public:
    message(message &&o) noexcept
        : rx_(std::exchange(o.rx_, nullptr)), data_(o.data_), size_(o.size_), from_(o.from_)
    {
    }
    message &operator=(message &&) = delete;
    message(const message &) = delete;
    ~message()
    {
        if (rx_)
            shmchan_release(rx_);
    }
    const unsigned char *data() const noexcept { return static_cast<const unsigned char *>(data_); }
    std::size_t size() const noexcept { return size_; }
    std::string_view view() const noexcept { return {static_cast<const char *>(data_), size_}; }
    shmchan_sender_id from() const noexcept { return from_; }

private:
    friend class receiver;
    explicit message(shmchan_receiver *rx) : rx_(rx) {}
    shmchan_receiver *rx_;
    const void *data_ = nullptr;
    std::size_t size_ = 0;
    shmchan_sender_id from_{};
};

// The receiving side of a channel. One thread at a time.
class receiver : public detail::handle<shmchan_receiver, shmchan_receiver_close> {
public:
    using handle::handle;

    using bytes = std::vector<unsigned char>;

    // Receives the next message into `buf` (resized to fit it), waiting for
    // one. Throws disconnected once the senders are gone and all is read.
    void recv(bytes &buf) { detail::check(into(buf, how::wait)); }
    bytes recv()
    {
        bytes buf;
        recv(buf);
        return buf;
    }
    // The next message if one is queued now.
    std::optional<bytes> try_recv()
    {
        bytes buf;
        if (!detail::check_or(into(buf, how::now), SHMCHAN_E_EMPTY))
            return std::nullopt;
        return buf;
    }
    // The next message, waiting at most `timeout`.
    std::optional<bytes> recv_for(std::chrono::nanoseconds timeout)
    {
        bytes buf;
        if (!detail::check_or(into(buf, how::timed, detail::nanos(timeout)), SHMCHAN_E_TIMEOUT))
            return std::nullopt;
        return buf;
    }
    // The next message and its sender, waiting for one.
    std::pair<bytes, shmchan_sender_id> recv_from()
    {
        message m = recv_ref();
        return {bytes(m.data(), m.data() + m.size()), m.from()};
    }
    // The next message in place (no copy), waiting for one.
    message recv_ref()
    {
        message m(nullptr);
        detail::check(shmchan_recv_ref(get(), &m.data_, &m.size_, &m.from_));
        m.rx_ = get();
        return m;
    }
    // The next message in place if one is queued now.
    std::optional<message> try_recv_ref()
    {
        message m(nullptr);
        if (!detail::check_or(shmchan_try_recv_ref(get(), &m.data_, &m.size_, &m.from_), SHMCHAN_E_EMPTY))
            return std::nullopt;
        m.rx_ = get();
        return m;
    }

private:
    enum class how { wait, now, timed };

    // One receive into `buf`, grown to the message's length when it does
    // not fit (the message stays queued until it does).
    shmchan_status into(bytes &buf, how h, uint64_t timeout_ns = 0)
    {
        for (;;) {
            std::size_t len = 0;
            shmchan_status s;
            switch (h) {
            case how::wait:
                s = shmchan_recv(get(), buf.data(), buf.size(), &len);
                break;
            case how::now:
                s = shmchan_try_recv(get(), buf.data(), buf.size(), &len);
                break;
            default:
                s = shmchan_recv_timeout(get(), buf.data(), buf.size(), &len, timeout_ns);
            }
            if (s == SHMCHAN_E_BUFFER_TOO_SMALL) {
                buf.resize(len);
                continue;
            }
            if (s == SHMCHAN_OK)
                buf.resize(len);
            return s;
        }
    }
};

// A channel: its segment and semaphore set. Any threads at once.
class channel : public detail::handle<shmchan_channel, shmchan_channel_close> {
public:
    using handle::handle;

    // The library's defaults, to change before create().
    static shmchan_options default_options()
    {
        shmchan_options o;
        detail::check(shmchan_options_init(&o));
        return o;
    }
    // A new channel at `key` (SHMCHAN_KEY_PRIVATE for a private one).
    static channel create(int32_t key, const shmchan_options *options = nullptr)
    {
        return made([&](shmchan_channel **out) { return shmchan_create(key, options, out); });
    }
    // A new channel at ftok(path, proj_id).
    static channel create_path(const char *path, int proj_id, const shmchan_options *options = nullptr)
    {
        return made([&](shmchan_channel **out) { return shmchan_create_path(path, proj_id, options, out); });
    }
    static channel open(int32_t key)
    {
        return made([&](shmchan_channel **out) { return shmchan_open(key, out); });
    }
    static channel open_path(const char *path, int proj_id)
    {
        return made([&](shmchan_channel **out) { return shmchan_open_path(path, proj_id, out); });
    }
    static channel open_id(int32_t shmid)
    {
        return made([&](shmchan_channel **out) { return shmchan_open_id(shmid, out); });
    }

    sender make_sender() const
    {
        shmchan_sender *tx = nullptr;
        detail::check(shmchan_channel_sender(get(), &tx));
        return sender(tx);
    }
    receiver make_receiver() const
    {
        shmchan_receiver *rx = nullptr;
        detail::check(shmchan_channel_receiver(get(), &rx));
        return receiver(rx);
    }
    int32_t id() const { return property<int32_t>(shmchan_channel_id); }
    int32_t key() const { return property<int32_t>(shmchan_channel_key); }
    std::size_t capacity() const { return property<std::size_t>(shmchan_channel_capacity); }
    std::size_t max_message_len() const { return property<std::size_t>(shmchan_channel_max_message_len); }

    // Removes the channel now, under any live parties, and empties this
    // handle (closed even when removal fails).
    void remove() { detail::check(shmchan_remove(release())); }

private:
    template <class F>
    static channel made(F f)
    {
        shmchan_channel *c = nullptr;
        detail::check(f(&c));
        return channel(c);
    }
    template <class T>
    T property(shmchan_status (*f)(shmchan_channel *, T *)) const
    {
        T out{};
        detail::check(f(get(), &out));
        return out;
    }
};

} // namespace shmchan

#endif // SHMCHAN_HPP
