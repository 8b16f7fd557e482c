#!/usr/bin/env escript
%% The Erlang VM as the final oracle for py_bridge.etf's tests.
%%
%% One VM serves a whole pytest session (starting one takes about a second).
%% It reads one command a line on stdin and answers on stdout:
%%
%%   rt HEX          -> "ok HEX": binary_to_term, then term_to_binary(T, [{minor_version, 2}])
%%                      "error REASON" when the VM refuses the bytes
%%   gen SEED COUNT  -> COUNT lines of HEX, each the term_to_binary of a
%%                      pseudo-random term drawn from SEED, then "done"
%%
%% Plain binary_to_term, not [safe]: the Python side invents new atoms.
-mode(compile).

main(_) ->
    ok = io:setopts(standard_io, [binary]),
    loop().

loop() ->
    case io:get_line("") of
        eof ->
            ok;
        {error, _} ->
            ok;
        Line ->
            handle(string:trim(Line, trailing, "\r\n")),
            loop()
    end.

handle(<<"rt ", Hex/binary>>) ->
    Reply =
        try
            Term = binary_to_term(binary:decode_hex(Hex)),
            [<<"ok ">>, binary:encode_hex(encode(Term))]
        catch
            Class:Reason -> [<<"error ">>, io_lib:format("~w:~w", [Class, Reason])]
        end,
    io:put_chars([Reply, $\n]);
handle(<<"gen ", Args/binary>>) ->
    [Seed, Count] = [binary_to_integer(A) || A <- binary:split(Args, <<" ">>, [global])],
    rand:seed(exsss, {Seed, Seed * 7 + 1, Seed * 13 + 2}),
    lists:foreach(
        fun(_) -> io:put_chars([binary:encode_hex(encode(term(4))), $\n]) end,
        lists:seq(1, Count)
    ),
    io:put_chars(<<"done\n">>);
handle(Other) ->
    io:put_chars([<<"error unknown command ">>, Other, $\n]).

encode(Term) -> term_to_binary(Term, [{minor_version, 2}]).

%% -- random terms ----------------------------------------------------------

pick(List) -> lists:nth(rand:uniform(length(List)), List).

term(0) ->
    leaf();
term(Depth) ->
    case rand:uniform(12) of
        1 -> [term(Depth - 1) || _ <- lists:seq(1, rand:uniform(5) - 1)];
        2 -> list_to_tuple([term(Depth - 1) || _ <- lists:seq(1, rand:uniform(5) - 1)]);
        3 -> small_map(Depth - 1);
        4 -> improper(Depth - 1);
        5 -> charlist();
        6 when Depth > 2 -> big_map();
        7 when Depth > 2 -> list_to_tuple([leaf() || _ <- lists:seq(1, 256 + rand:uniform(20))]);
        %% around the 64 KiB binary and STRING_EXT thresholds; rare, as they are big
        8 when Depth == 4 -> pick([leaf(), leaf(), leaf(), leaf(), leaf(), big()]);
        _ -> leaf()
    end.

leaf() ->
    case rand:uniform(20) of
        1 -> rand:uniform(256) - 1;
        2 -> rand:uniform(1 bsl 32) - (1 bsl 31) - 1;
        3 -> pick([255, 256, -1, 2147483647, -2147483648, 2147483648, -2147483649, 0]);
        4 -> bignum();
        5 -> float();
        6 -> pick([0.0, -0.0, 1.0, 1.5e300, -2.2250738585072014e-308, 5.0e-324]);
        7 -> atom();
        8 -> pick([true, false, nil, nan, infinity, neg_infinity, undefined, '']);
        9 -> crypto_bytes(rand:uniform(40) - 1);
        10 -> unicode:characters_to_binary(unicode_chars(rand:uniform(12)));
        11 -> bitstring();
        12 -> pick([[], {}, #{}, <<>>]);
        13 -> opaque();
        14 -> charlist();
        15 -> atom();
        _ -> rand:uniform(1000000) * pick([1, -1])
    end.

big() ->
    pick([crypto_bytes(65536), crypto_bytes(65535), lists:duplicate(65535, 7), lists:duplicate(65536, 7)]).

bignum() ->
    Bytes = pick([rand:uniform(8), rand:uniform(300)]),
    Magnitude = binary:decode_unsigned(crypto_bytes(Bytes)) + (1 bsl 31),
    Magnitude * pick([1, -1]).

float() ->
    case <<(rand:uniform(1 bsl 64) - 1):64>> of
        <<F:64/float>> -> F;
        %% NaN and infinity bit patterns do not match: the VM has no such floats.
        _ -> rand:uniform() * 1.0e10
    end.

atom() ->
    Chars =
        case rand:uniform(4) of
            1 -> unicode_chars(rand:uniform(12));
            2 -> [$a + rand:uniform(26) - 1 || _ <- lists:seq(1, rand:uniform(10))];
            3 -> [pick("_@.") | "Elixir.Mod"];
            %% up to 255 characters of up to 4 bytes each: ATOM_UTF8_EXT
            4 -> unicode_chars(200 + rand:uniform(55))
        end,
    list_to_atom(Chars).

unicode_chars(N) ->
    [pick([rand:uniform(16#7F - 16#20) + 16#20, rand:uniform(16#7FF), 16#4E00 + rand:uniform(500),
           16#1F600 + rand:uniform(50), 16#E000 + rand:uniform(100)])
     || _ <- lists:seq(1, N)].

crypto_bytes(N) -> list_to_binary([rand:uniform(256) - 1 || _ <- lists:seq(1, N)]).

bitstring() ->
    Bits = rand:uniform(7),
    Bytes = crypto_bytes(rand:uniform(6) - 1),
    <<Bytes/binary, (rand:uniform(1 bsl Bits) - 1):Bits>>.

charlist() ->
    [rand:uniform(256) - 1 || _ <- lists:seq(1, rand:uniform(20))].

improper(Depth) ->
    Tail = pick([leaf_not_list(), <<"tail">>, an_atom, 42, {tail}]),
    lists:foldl(fun(_, Acc) -> [term(Depth) | Acc] end, Tail, lists:seq(1, rand:uniform(4))).

leaf_not_list() ->
    case leaf() of
        L when is_list(L) -> 3.5;
        Leaf -> Leaf
    end.

%% Keys avoid values Python holds equal but Erlang does not (true and 1,
%% 1 and 1.0), which a Python dict cannot keep apart.
small_map(Depth) ->
    maps:from_list([{key(2), term(Depth)} || _ <- lists:seq(1, rand:uniform(7) - 1)]).

big_map() ->
    maps:from_list([{key(1), leaf()} || _ <- lists:seq(1, 33 + rand:uniform(30))]).

key(0) ->
    key_leaf();
key(Depth) ->
    case rand:uniform(8) of
        1 -> list_to_tuple([key(Depth - 1) || _ <- lists:seq(1, rand:uniform(3))]);
        2 -> [key(Depth - 1) || _ <- lists:seq(1, rand:uniform(3))];
        3 -> maps:from_list([{key(Depth - 1), key(Depth - 1)} || _ <- lists:seq(1, rand:uniform(3))]);
        _ -> key_leaf()
    end.

key_leaf() ->
    case rand:uniform(6) of
        1 -> rand:uniform(1000) + 1;
        2 -> bignum();
        3 -> atom();
        4 -> crypto_bytes(rand:uniform(8));
        5 -> float() + 0.5;
        6 -> pick([nil, make_ref(), self(), <<1:3>>])
    end.

opaque() ->
    X = leaf_not_opaque(),
    case rand:uniform(7) of
        1 -> self();
        2 -> spawn(fun() -> ok end);
        3 -> make_ref();
        4 -> hd(erlang:ports());
        5 -> fun erlang:self/0;
        6 -> fun() -> X end;
        7 -> fun lists:map/2
    end.

leaf_not_opaque() -> pick([1, <<"free">>, {free, 2.5}, [a, b]]).
