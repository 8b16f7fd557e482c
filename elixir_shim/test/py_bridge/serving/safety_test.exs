defmodule PyBridge.Serving.SafetyTest do
  # Safe by default: pickled weights and repository code need an opt-in,
  # and the worker never opens a network socket.
  use ExUnit.Case, async: true

  import PyBridge.TestSupport
  import PyBridge.FaultHelpers

  alias PyBridge.{Error, Serving}

  @moduletag :model

  # One worker, serving the pickled weights with the opt-in, for the tests
  # that need a loaded model.
  setup_all do
    pickled = tiny_model("bert_sequence_classification_pickled")
    name = unique_name(__MODULE__)
    serving = classification_serving(pickled, allow_pickle: true)
    start_supervised!({Serving, serving: serving, name: name}, id: name)
    %{pickled_serving: name}
  end

  defp classification_serving(dir, load_opts \\ []) do
    {:ok, model_info} = PyBridge.load_model({:local, dir}, load_opts)
    {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})
    PyBridge.Text.text_classification(model_info, tokenizer, top_k: 2)
  end

  describe "pickled weights" do
    test "are refused with :unsafe_model without allow_pickle" do
      Process.flag(:trap_exit, true)
      serving = classification_serving(tiny_model("bert_sequence_classification_pickled"))

      assert {:error, %Error{type: :unsafe_model} = error} =
               Serving.start_link(serving: serving, name: unique_name())

      assert error.message =~ "pytorch_model.bin"
      assert error.message =~ "allow_pickle"
    end

    test "load with allow_pickle: true, giving the same answers as transformers", ctx do
      text = "i love this movie"
      %{predictions: predictions} = Serving.batched_run(ctx.pickled_serving, text)

      # The same weights, from the safetensors file they were pickled from,
      # run by transformers directly (tests/reference.py).
      [expected] =
        reference([
          "classification",
          "--model",
          tiny_model("bert_sequence_classification"),
          "--top-k",
          "2",
          text
        ])

      assert Enum.map(predictions, & &1.label) == Enum.map(expected, & &1.label)

      for {ours, theirs} <- Enum.zip(predictions, expected),
          do: assert_in_delta(ours.score, theirs.score, 1.0e-5)
    end
  end

  describe "code shipped with a model" do
    # A copy of a tiny model whose config points at custom code that leaves
    # a marker file when it is imported.
    defp model_with_remote_code do
      dir =
        Path.join(
          System.tmp_dir!(),
          "py_bridge_remote_code_#{System.unique_integer([:positive])}"
        )

      File.cp_r!(tiny_model("bert_sequence_classification"), dir)
      marker = Path.join(dir, "REMOTE_CODE_RAN")
      config = Path.join(dir, "config.json")

      File.write!(
        config,
        config
        |> File.read!()
        |> String.replace(
          ~s("architectures"),
          ~s("auto_map": {"AutoConfig": "custom.CustomConfig", ) <>
            ~s("AutoModelForSequenceClassification": "custom.CustomModel"}, "architectures")
        )
      )

      File.write!(Path.join(dir, "custom.py"), """
      from pathlib import Path
      from transformers import BertConfig, BertForSequenceClassification

      Path(#{inspect(marker)}).write_text("ran")


      class CustomConfig(BertConfig):
          pass


      class CustomModel(BertForSequenceClassification):
          config_class = CustomConfig
      """)

      on_exit(fn -> File.rm_rf!(dir) end)
      {dir, marker}
    end

    test "never runs without trust_remote_code" do
      {dir, marker} = model_with_remote_code()
      name = unique_name()
      start_supervised!({Serving, serving: classification_serving(dir), name: name}, id: name)

      assert %{predictions: [_, _]} = Serving.batched_run(name, "the cat sat on the mat")
      refute File.exists?(marker)
    end

    test "runs with trust_remote_code: true" do
      {dir, marker} = model_with_remote_code()
      serving = classification_serving(dir, trust_remote_code: true)
      name = unique_name()
      start_supervised!({Serving, serving: serving, name: name}, id: name)

      assert %{predictions: [_, _]} = Serving.batched_run(name, "the cat sat on the mat")
      assert File.read!(marker) == "ran"
    end
  end

  describe "the worker's sockets" do
    test "hold no network socket once a model is loaded and has run", ctx do
      assert %{predictions: _} = Serving.batched_run(ctx.pickled_serving, "hello")
      [os_pid] = os_pids(ctx.pickled_serving)

      # Every socket the process holds, by inode, against every inet socket
      # of the system (TCP and UDP, IPv4 and IPv6).
      sockets =
        for link <- File.ls!("/proc/#{os_pid}/fd"),
            {:ok, target} <- [File.read_link("/proc/#{os_pid}/fd/#{link}")],
            [_, inode] <- [Regex.run(~r/^socket:\[(\d+)\]$/, target)],
            do: inode

      inet =
        for table <- ~w(tcp tcp6 udp udp6 raw raw6),
            {:ok, text} <- [File.read("/proc/net/#{table}")],
            [_header | rows] = String.split(text, "\n", trim: true),
            row <- rows,
            do: row |> String.split() |> Enum.at(9)

      assert MapSet.disjoint?(MapSet.new(sockets), MapSet.new(inet)),
             "the worker holds network sockets: #{inspect(sockets)}"
    end
  end
end
