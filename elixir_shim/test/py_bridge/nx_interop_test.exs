defmodule PyBridge.NxInteropTest do
  # Tensors in and out as Nx.Tensor when the host application has Nx. Nx is
  # not a dependency: this suite runs only when PYBRIDGE_NX_EBIN names a
  # local build (test_helper.exs), and then on its own.
  use ExUnit.Case, async: false

  import PyBridge.TestSupport

  alias PyBridge.Tensor

  @moduletag :nx

  @texts ["i love this movie", "Café in Zürich, naïve 東京!"]

  # Every call goes through apply/3 so that this file compiles without Nx.
  defp nx(fun, args), do: apply(Nx, fun, args)

  setup_all do
    unless Code.ensure_loaded?(Nx) do
      raise "the :nx tests need Nx on the code path: set PYBRIDGE_NX_EBIN (see test_helper.exs)"
    end

    dir = tiny_model("bert_base")
    {:ok, model_info} = PyBridge.load_model({:local, dir})
    {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})

    # sentence-transformers' default for a plain transformers directory:
    # mean pooling of the last hidden state, no normalization.
    embedding =
      PyBridge.Text.text_embedding(model_info, tokenizer,
        output_attribute: :hidden_state,
        output_pool: :mean_pooling
      )

    echo =
      PyBridge.Serving.new(
        %PyBridge.Model{repository: {:hf, "sentence-transformers/all-MiniLM-L6-v2", []}},
        :echo,
        %{}
      )

    # Computed once: each call loads sentence-transformers.
    expected = reference(["embedding", "--model", dir | @texts])

    %{dir: dir, embedding: embedding, echo: echo, expected: expected}
  end

  describe "to_nx/1 and from_nx/1" do
    test "every wire type converts both ways, and Nx and PyBridge read the same values" do
      for type <- [{:u, 8}, {:s, 16}, {:s, 64}, {:f, 16}, {:bf, 16}, {:f, 32}, {:f, 64}] do
        values = [[1, 2, 3], [4, 5, 120]]
        nx_tensor = nx(:tensor, [values, [type: type, backend: Nx.BinaryBackend]])

        tensor = Tensor.from_nx(nx_tensor)
        assert {tensor.type, tensor.shape} == {type, {2, 3}}
        # Our decoder and Nx's agree on the bytes.
        assert Tensor.to_list(tensor) == nx(:to_list, [nx_tensor])

        back = Tensor.to_nx(tensor)
        assert {nx(:type, [back]), nx(:shape, [back])} == {type, {2, 3}}
        assert nx(:to_binary, [back]) == nx(:to_binary, [nx_tensor])
      end
    end

    test "non-finite floats and rank-0 tensors survive" do
      nx_tensor = nx(:tensor, [[:nan, :infinity, :neg_infinity, -0.5], [type: {:f, 32}]])
      assert Tensor.to_list(Tensor.from_nx(nx_tensor)) == [:nan, :infinity, :neg_infinity, -0.5]

      scalar = Tensor.to_nx(Tensor.new(<<2.5::float-32-little>>, {:f, 32}, {}))
      assert nx(:shape, [scalar]) == {}
      assert nx(:to_number, [scalar]) == 2.5
    end

    test "converting shares the binary instead of copying it" do
      size = 1_048_576
      data = :crypto.strong_rand_bytes(size)

      count = fn ->
        Enum.count(process_binaries(), fn {_id, bytes, _refs} -> bytes == size end)
      end

      before = count.()

      nx_tensor = Tensor.to_nx(Tensor.new(data, {:u, 8}, {1024, 1024}))
      back = Tensor.from_nx(nx_tensor)

      # Still one 1 MiB binary in this process, referenced by all three.
      assert count.() == before
      assert back.data == data
      assert nx_tensor.data.__struct__ == Nx.BinaryBackend
    end

    test "a type or layout the wire does not carry is refused" do
      complex = nx(:tensor, [[1.0], [type: {:c, 64}]])

      assert_raise ArgumentError, ~r/cannot send a tensor of type \{:c, 64\}/, fn ->
        Tensor.from_nx(complex)
      end

      vectorized = nx(:vectorize, [nx(:iota, [{2, 3}]), :rows])

      assert_raise ArgumentError, ~r/not vectorized/, fn -> Tensor.from_nx(vectorized) end
    end
  end

  describe "servings" do
    test "embeddings come back as Nx tensors on the binary backend, with transformers' values",
         ctx do
      results = PyBridge.Serving.run(ctx.embedding, @texts)

      for {%{embedding: embedding}, reference} <- Enum.zip(results, ctx.expected) do
        assert %{__struct__: Nx.Tensor} = embedding
        assert embedding.data.__struct__ == Nx.BinaryBackend
        assert {nx(:type, [embedding]), nx(:shape, [embedding])} == {{:f, 32}, {32}}

        for {ours, theirs} <- Enum.zip(nx(:to_list, [embedding]), reference) do
          assert_in_delta ours, theirs, 1.0e-5
        end
      end
    end

    test "Nx tensors in an input cross to the worker and come back as Nx tensors", ctx do
      audio = nx(:tensor, [[0.25, -0.5, 1.0e-3], [type: {:f, 32}]])
      image = nx(:tensor, [[[[1, 2, 3]], [[4, 5, 255]]], [type: {:u, 8}]])

      assert %{audio: audio_back, image: image_back, seed: 7} =
               PyBridge.Serving.run(ctx.echo, %{audio: audio, image: image, seed: 7})

      for {sent, back} <- [{audio, audio_back}, {image, image_back}] do
        assert %{__struct__: Nx.Tensor} = back
        assert nx(:type, [back]) == nx(:type, [sent])
        assert nx(:shape, [back]) == nx(:shape, [sent])
        assert nx(:to_binary, [back]) == nx(:to_binary, [sent])
      end
    end

    test "the worker reads an Nx tensor's bytes as torch does" do
      values = [[0.5, -1.25, 3.0], [1.0e-3, 2.0, -7.5]]
      item = Tensor.deep_to_wire(%{audio: nx(:tensor, [values, [type: {:bf, 16}]])})
      path = Path.join(System.tmp_dir!(), "nx_item_#{System.unique_integer([:positive])}.etf")
      File.write!(path, PyBridge.Protocol.encode(item))

      # py_bridge.tensor builds a torch tensor over the bytes; torch's own
      # bfloat16 decoding gives the values, sent back as an ETF term.
      script = """
      import sys
      from py_bridge.etf import decode, encode
      from py_bridge.tensor import Tensor
      item = decode(open(sys.argv[1], "rb").read())
      t = Tensor.from_term(item["audio"]).to_torch()
      sys.stdout.buffer.write(encode((str(t.dtype), list(t.shape), t.float().tolist())))
      """

      {out, 0} = System.cmd(python(), ["-c", script, path])
      File.rm!(path)

      # Nx rounds the values to bfloat16 as torch does.
      rounded = nx(:to_list, [nx(:tensor, [values, [type: {:bf, 16}]])])
      assert :erlang.binary_to_term(out) == {"torch.bfloat16", [2, 3], rounded}
    end
  end

  describe "PyBridge.Parity with an Nx.Serving" do
    # A stand-in for the native serving Bumblebee would build: an Nx.Serving
    # whose computation returns the embeddings sentence-transformers
    # computed for the same texts (tests/reference.py).
    defp native_stand_in(texts, embeddings) do
      table = Map.new(Enum.zip(texts, embeddings))

      preprocess = fn inputs ->
        rows = Enum.map(inputs, fn text -> nx(:tensor, [table[text], [type: {:f, 32}]]) end)
        {apply(Nx.Batch, :stack, [rows]), length(inputs)}
      end

      postprocess = fn {batch, _metadata}, count ->
        for i <- 0..(count - 1) do
          row = nx(:slice_along_axis, [batch, i, 1])
          %{embedding: nx(:squeeze, [row, [axes: [0]]])}
        end
      end

      serving = apply(Nx.Serving, :jit, [&Function.identity/1])
      serving = apply(Nx.Serving, :client_preprocessing, [serving, preprocess])
      apply(Nx.Serving, :client_postprocessing, [serving, postprocess])
    end

    test "a bridge serving and an Nx.Serving that agree are equal; a perturbed one is not",
         %{embedding: bridge, expected: expected} do
      texts = @texts

      report =
        PyBridge.Parity.compare(bridge, native_stand_in(texts, expected), texts, atol: 1.0e-5)

      assert report.equal?, PyBridge.Parity.Report.format(report)
      assert report.numbers_compared == 2 * 32

      [first, second] = expected
      perturbed = [first, List.update_at(second, 5, &(&1 + 0.01))]

      report =
        PyBridge.Parity.compare(bridge, native_stand_in(texts, perturbed), texts, atol: 1.0e-5)

      refute report.equal?

      assert %PyBridge.Parity.Difference{kind: :tensor, path: [1, :embedding], field: :embedding} =
               difference = PyBridge.Parity.Report.first_difference(report)

      assert difference.detail =~
               "1 of 32 elements beyond the tolerance; the worst at flat index 5"
    end
  end

  defp process_binaries do
    {:binary, binaries} = Process.info(self(), :binary)
    binaries
  end
end
