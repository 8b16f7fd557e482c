defmodule PyBridge.NativeCheckTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO
  import PyBridge.TestSupport

  # The Bumblebee API reference lives next to the repository, not in it. It
  # was written from Bumblebee's source: §2.3 lists every class of
  # @transformers_class_to_model with its module, and the rules that give
  # each class its architecture atom.
  @reference Path.expand("../shared/reference/bumblebee_api.md", PyBridge.TestSupport.repo_root())

  describe "the embedded table" do
    if not File.exists?(@reference) do
      @tag skip: "the Bumblebee API reference is not at #{@reference}"
    end

    test "has every class of the reference, with its module and architecture" do
      reference = reference_classes(File.read!(@reference))
      table = PyBridge.NativeCheck.table()

      assert map_size(reference) == 145
      assert Enum.sort(Map.keys(table)) == Enum.sort(Map.keys(reference))

      for {name, {module, architecture}} <- reference do
        assert {table[name].module, table[name].architecture} == {module, architecture}, name
      end
    end

    test "names the Bumblebee version and commit it reflects" do
      assert PyBridge.NativeCheck.bumblebee_version() == "0.7.0"
      assert PyBridge.NativeCheck.bumblebee_commit() == "d0774e8"
    end

    test "servings are {module, function, arity} of Bumblebee's constructors" do
      assert PyBridge.NativeCheck.lookup("Qwen3ForCausalLM").servings == [
               {Bumblebee.Text, :generation, 4},
               {Bumblebee.Text, :text_reranking_qwen3, 3}
             ]

      assert PyBridge.NativeCheck.lookup("Dinov2Backbone").servings == []
      assert PyBridge.NativeCheck.lookup("DebertaV2ForSequenceClassification") == nil
    end
  end

  setup_all do
    %{
      bert: tiny_model("bert_sequence_classification"),
      bert_base: tiny_model("bert_base"),
      deberta: tiny_model("deberta_v2_sequence_classification")
    }
  end

  describe "native_check/2 on tiny models" do
    test "a class Bumblebee loads is native, with the servings to switch to", %{bert: dir} do
      assert {:native, answer} = PyBridge.native_check({:local, dir})
      assert answer.module == Bumblebee.Text.Bert
      assert answer.architecture == :for_sequence_classification
      assert answer.hf_architecture == "BertForSequenceClassification"
      assert {Bumblebee.Text, :text_classification, 3} in answer.servings
      assert answer.load_options == []
    end

    test "a class Bumblebee lacks is not native, and is named", %{deberta: dir} do
      assert {:not_native, answer} = PyBridge.native_check({:local, dir})
      assert answer.hf_architecture == "DebertaV2ForSequenceClassification"
      assert answer.model_type == "deberta-v2"
      assert answer.reason =~ "DebertaV2ForSequenceClassification is not among the 145 classes"
      assert answer.closest_module == nil
    end

    test "a model_info answers without another worker, and keeps the chosen head", %{
      bert_base: dir
    } do
      {:ok, model_info} =
        PyBridge.load_model({:local, dir}, architecture: :for_token_classification)

      assert {:native, answer} = PyBridge.native_check(model_info)
      assert answer.hf_architecture == "BertModel"
      assert answer.architecture == :for_token_classification
      assert answer.load_options == [architecture: :for_token_classification]
      assert answer.servings == [{Bumblebee.Text, :token_classification, 3}]
    end

    test "agrees with `bridge native-check --etf`", %{bert: bert, deberta: deberta} do
      assert {:native, ours} = PyBridge.native_check({:local, bert})
      assert {:native, theirs} = python_native_check(bert)
      assert inspect(ours.module) == theirs.module
      assert Atom.to_string(ours.architecture) == theirs.architecture

      assert Enum.map(ours.servings, &PyBridge.NativeCheck.format_serving/1) ==
               theirs.servings

      assert {:not_native, ours} = PyBridge.native_check({:local, deberta})
      assert {:not_native, theirs} = python_native_check(deberta)
      assert ours.hf_architecture == theirs.hf_architecture
      assert ours.reason == theirs.reason
    end

    test "a directory that does not exist is an error" do
      assert {:error, message} = PyBridge.native_check({:local, "/nonexistent/model"})
      assert message =~ "not found"
    end
  end

  describe "check/2 without a model" do
    test "another head of a known family names the module and its heads" do
      spec = %PyBridge.ModelSpec{
        hf_architecture: "LlamaForQuestionAnswering",
        model_type: "llama"
      }

      assert {:not_native, answer} = PyBridge.NativeCheck.check(spec)
      assert answer.closest_module == Bumblebee.Text.Llama

      assert answer.closest_heads == [
               :base,
               :for_causal_language_modeling,
               :for_sequence_classification
             ]
    end

    test "the model type finds the family when the class name does not" do
      spec = %PyBridge.ModelSpec{
        hf_architecture: "XLMRobertaForFancyHead",
        model_type: "xlm-roberta"
      }

      assert {:not_native, %{closest_module: Bumblebee.Text.Roberta}} =
               PyBridge.NativeCheck.check(spec)
    end

    test "a head the module lacks is not native" do
      spec = %PyBridge.ModelSpec{hf_architecture: "GPT2LMHeadModel", model_type: "gpt2"}

      assert {:not_native, %{reason: reason}} =
               PyBridge.NativeCheck.check(spec, :for_question_answering)

      assert reason == "Bumblebee.Text.Gpt2 has no :for_question_answering head"
    end

    test "a config without a class is not native" do
      assert {:not_native,
              %{hf_architecture: nil, reason: "config.json names no architecture class"}} =
               PyBridge.NativeCheck.check(%PyBridge.ModelSpec{model_type: "bert"})
    end
  end

  describe "mix py_bridge.native_check" do
    test "prints the answer for --local", %{bert: dir} do
      output = capture_io(fn -> Mix.Tasks.PyBridge.NativeCheck.run(["--local", dir]) end)

      assert output =~ "BertForSequenceClassification is supported natively by Bumblebee 0.7.0."
      assert output =~ "module:        Bumblebee.Text.Bert"
      assert output =~ "Bumblebee.Text.text_classification/3"
    end

    test "prints \"Not yet\" for a class Bumblebee lacks", %{deberta: dir} do
      output = capture_io(fn -> Mix.Tasks.PyBridge.NativeCheck.run(["--local", dir]) end)
      assert output =~ "Not yet: DebertaV2ForSequenceClassification"
    end

    test "takes the hub form and refuses a missing or mixed repository" do
      assert Mix.Tasks.PyBridge.NativeCheck.repository!(hf: "a/b", offline: true, revision: "v1") ==
               {:hf, "a/b", [offline: true, revision: "v1"]}

      assert_raise Mix.Error, ~r/expected either --local DIR or --hf ID/, fn ->
        Mix.Tasks.PyBridge.NativeCheck.run([])
      end

      assert_raise Mix.Error, ~r/expected either --local DIR or --hf ID/, fn ->
        Mix.Tasks.PyBridge.NativeCheck.run(["--local", "x", "--offline"])
      end
    end
  end

  # §2.3: a table of module | classes; a class in backticks may be followed
  # by its atom in parentheses, otherwise the suffix rules under the table apply.
  defp reference_classes(text) do
    [_, section] = String.split(text, "### 2.3", parts: 2)
    [section | _] = String.split(section, "\nThe architecture atom", parts: 2)

    for "| " <> _ = line <- String.split(section, "\n"),
        not String.starts_with?(line, ["| Module", "|---"]),
        [module, classes] =
          line |> String.trim("|") |> String.split("|") |> Enum.map(&String.trim/1),
        [_, name | explicit] <- Regex.scan(~r/`(\w+)`(?:\s*\(:(\w+))?/, classes),
        into: %{} do
      architecture =
        case explicit do
          [atom] -> String.to_atom(atom)
          [] -> suffix_architecture(name)
        end

      {name, {Module.concat(["Bumblebee", module]), architecture}}
    end
  end

  defp suffix_architecture(name) do
    cond do
      String.ends_with?(name, ["ForCausalLM", "LMHeadModel"]) ->
        :for_causal_language_modeling

      String.ends_with?(name, "ForMaskedLM") ->
        :for_masked_language_modeling

      match = Regex.run(~r/For([A-Za-z]+)$/, name) ->
        head = match |> List.last() |> Macro.underscore()
        String.to_atom("for_" <> head)

      String.ends_with?(name, "Model") ->
        :base
    end
  end

  defp python_native_check(dir) do
    {:ok, command} = PyBridge.Command.resolve()
    port = PyBridge.Command.open(command, ["native-check", "--etf", "--model", dir])

    receive do
      {^port, {:data, frame}} ->
        {:ok, {tag, answer}} = :erlang.binary_to_term(frame)
        {tag, answer}
    after
      60_000 -> flunk("bridge native-check --etf gave no answer")
    end
  end
end
