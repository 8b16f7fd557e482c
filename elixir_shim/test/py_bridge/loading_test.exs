defmodule PyBridge.LoadingTest do
  use ExUnit.Case, async: true

  describe "load_model/2" do
    test "returns {:error, message} for a directory that does not exist" do
      assert {:error, message} = PyBridge.load_model({:local, "/nonexistent/model"})
      assert message =~ "not found"
    end

    test "returns {:error, message} for a hub repository that is not available offline" do
      assert {:error, message} = PyBridge.load_model({:hf, "nobody/no-such-model", offline: true})
      assert message =~ "nobody/no-such-model"
    end

    test "raises for a repository in no known form" do
      assert_raise ArgumentError, ~r/expected repository to be either/, fn ->
        PyBridge.load_model("bert-base-uncased")
      end
    end

    test "raises for an architecture or device of the wrong type" do
      assert_raise ArgumentError, ~r/expected :architecture to be an atom/, fn ->
        PyBridge.load_model({:local, "/tmp"}, architecture: "for_sequence_classification")
      end

      assert_raise ArgumentError, ~r/expected :device to be a string/, fn ->
        PyBridge.load_model({:local, "/tmp"}, device: :cpu)
      end
    end

    test "raises for unknown hub options and unknown load options" do
      assert_raise ArgumentError, fn -> PyBridge.load_model({:hf, "a/b", branch: "main"}) end
      assert_raise ArgumentError, fn -> PyBridge.load_model({:local, "/tmp"}, colour: :red) end
    end

    test "the bundled model answers for its hub id" do
      assert {:ok, %{spec: spec, model: %PyBridge.Model{}, params: nil}} =
               PyBridge.load_model({:hf, "sentence-transformers/all-MiniLM-L6-v2"})

      assert spec.architecture == :base
      assert spec.model_type == "bert"
    end
  end

  describe "load_model/2 on a directory that changes" do
    @describetag :tmp_dir
    test "sees a config.json written after the first load", %{tmp_dir: dir} do
      write_config(dir, %{"0" => "NEGATIVE", "1" => "POSITIVE"}, 1)

      assert {:ok, %{spec: %{id_to_label: %{0 => "NEGATIVE"}}}} =
               PyBridge.load_model({:local, dir})

      write_config(dir, %{"0" => "BAD", "1" => "GOOD", "2" => "MEH"}, 2)
      assert {:ok, %{spec: %{id_to_label: labels}}} = PyBridge.load_model({:local, dir})
      assert labels == %{0 => "BAD", 1 => "GOOD", 2 => "MEH"}
    end
  end

  # A config.json by hand (the JSON is simple enough to write literally).
  defp write_config(dir, id2label, mtime_offset) do
    labels = Enum.map_join(id2label, ", ", fn {k, v} -> ~s("#{k}": "#{v}") end)
    path = Path.join(dir, "config.json")

    File.write!(
      path,
      ~s({"architectures": ["BertForSequenceClassification"], "model_type": "bert", "id2label": {#{labels}}})
    )

    # Distinct modification times even within one second.
    File.touch!(path, System.os_time(:second) + mtime_offset)
  end

  describe "load_tokenizer/2" do
    test "returns {:error, message} for a directory that does not exist" do
      assert {:error, _message} = PyBridge.load_tokenizer({:local, "/nonexistent/model"})
    end
  end
end
