defmodule PyBridge.Vision.ImageClassificationTest do
  use ExUnit.Case, async: false

  import PyBridge.TestSupport
  import PyBridge.MediaSupport

  @moduletag :model

  setup_all do
    dir = tiny_model("vit_image_classification")
    {:ok, model_info} = PyBridge.load_model({:local, dir})
    {:ok, featurizer} = PyBridge.load_featurizer({:local, dir})
    tmp = Path.join(System.tmp_dir!(), "pybridge-vit-#{System.unique_integer([:positive])}")
    File.mkdir_p!(tmp)
    on_exit(fn -> File.rm_rf!(tmp) end)

    rgb = image(48, 64, 3, 1)
    grey = image(40, 30, 1, 2)
    rgba = image(36, 50, 4, 3)
    ppm = write_netpbm!(rgb, Path.join(tmp, "rgb.ppm"))
    pgm = write_netpbm!(grey, Path.join(tmp, "grey.pgm"))
    inputs = [rgb, grey, rgba, {:file, ppm}, {:file, pgm}]

    # transformers' image processor and ViTForImageClassification on each
    # image alone, softmax, top 3 (tests/reference.py).
    args =
      [raw_image_arg(rgb, tmp, "rgb"), raw_image_arg(grey, tmp, "grey")] ++
        [raw_image_arg(rgba, tmp, "rgba"), ppm, pgm]

    expected =
      Task.async(fn ->
        reference(["image_classification", "--model", dir, "--top-k", "3" | args])
      end)

    name = __MODULE__.Serving
    serving = PyBridge.Vision.image_classification(model_info, featurizer, top_k: 3)

    start_supervised!(
      {PyBridge.Serving, serving: serving, name: name, batch_size: 4, batch_timeout: 20}
    )

    %{
      name: name,
      dir: dir,
      tmp: tmp,
      model_info: model_info,
      featurizer: featurizer,
      inputs: inputs,
      expected: Task.await(expected, :infinity)
    }
  end

  describe "image_classification/3" do
    test "predictions are transformers', for tensors of 1, 3 and 4 channels and image files",
         ctx do
      results = PyBridge.Serving.batched_run(ctx.name, ctx.inputs)
      assert length(results) == length(ctx.expected)

      for {%{predictions: predictions}, expected} <- Enum.zip(results, ctx.expected) do
        assert Enum.map(predictions, & &1.label) == Enum.map(expected, & &1.label)

        for {ours, theirs} <- Enum.zip(predictions, expected) do
          assert Map.keys(ours) == [:label, :score]
          assert_in_delta ours.score, theirs.score, 1.0e-5
        end
      end
    end

    test "a single image gives one map, a list a list", ctx do
      [image | _] = ctx.inputs
      assert %{predictions: [_, _, _]} = PyBridge.Serving.batched_run(ctx.name, image)
      assert [%{predictions: [_, _, _]}] = PyBridge.Serving.batched_run(ctx.name, [image])
    end
  end

  describe "input validation, in the caller" do
    test "a tensor that is not an image", ctx do
      assert_raise ArgumentError,
                   "invalid input, expected an image tensor of shape {height, width, channels} " <>
                     "with 1 to 4 channels, got a tensor of shape {4, 4}",
                   fn ->
                     PyBridge.Serving.batched_run(ctx.name, image(4, 4, 1, 0) |> flat())
                   end

      assert_raise ArgumentError,
                   "invalid input, expected an image tensor of an integer type, got: {:f, 32}",
                   fn ->
                     tensor = PyBridge.Tensor.new(<<0::32*12>>, {:f, 32}, {2, 2, 3})
                     PyBridge.Serving.batched_run(ctx.name, tensor)
                   end
    end

    test "two channels, as Bumblebee's featurizers refuse them", ctx do
      assert_raise ArgumentError,
                   "invalid input in the batch, expected image with 3 channels, but got 2 " <>
                     "and no automatic conversion applies",
                   fn -> PyBridge.Serving.batched_run(ctx.name, [image(4, 4, 2, 0)]) end
    end

    test "a missing file and a string", ctx do
      assert_raise ArgumentError, "invalid input, no file found at /nonexistent/cat.png", fn ->
        PyBridge.Serving.batched_run(ctx.name, {:file, "/nonexistent/cat.png"})
      end

      assert_raise ArgumentError, ~s(invalid input, expected an image, got: "cat.png"), fn ->
        PyBridge.Serving.batched_run(ctx.name, "cat.png")
      end
    end

    test "a file the worker cannot decode fails its own caller only", ctx do
      path = Path.join(ctx.tmp, "not-an-image.png")
      File.write!(path, "hello")
      [image | _] = ctx.inputs

      # Sent together, they may share a batch: the bad file's caller gets the
      # worker's error, the other caller its answer.
      task = Task.async(fn -> PyBridge.Serving.batched_run(ctx.name, image) end)

      error =
        assert_raise PyBridge.Error, fn ->
          PyBridge.Serving.batched_run(ctx.name, {:file, path})
        end

      assert error.type == :bad_input
      assert error.message =~ "could not decode the image file"
      assert %{predictions: [_, _, _]} = Task.await(task, :infinity)
    end
  end

  describe "options" do
    test "are checked as Bumblebee checks them", ctx do
      assert_raise ArgumentError, ~r/unknown keys \[:output_pool\]/, fn ->
        PyBridge.Vision.image_classification(ctx.model_info, ctx.featurizer, output_pool: :mean)
      end

      assert_raise ArgumentError, ~r/unknown keys \[:sequence_length\]/, fn ->
        PyBridge.Vision.image_classification(ctx.model_info, ctx.featurizer,
          compile: [batch_size: 2, sequence_length: 8]
        )
      end

      assert_raise ArgumentError, ~r/expected :scores_function to be one of/, fn ->
        PyBridge.Vision.image_classification(ctx.model_info, ctx.featurizer, scores_function: :max)
      end
    end

    test "the model must be a classifier", ctx do
      {:ok, base} = PyBridge.load_model({:local, ctx.dir}, architecture: :base)

      assert_raise ArgumentError,
                   ~r/expected a model with architecture :for_image_classification/,
                   fn ->
                     PyBridge.Vision.image_classification(base, ctx.featurizer)
                   end
    end
  end

  describe "load_featurizer/2" do
    test "reads the image processor's settings", ctx do
      assert %PyBridge.Featurizer{type: "ViTImageProcessor", sampling_rate: nil, path: path} =
               ctx.featurizer

      assert path == ctx.dir
      assert ctx.featurizer.config["size"] == %{"height" => 32, "width" => 32}
    end

    test "says when a repository has no featurizer" do
      dir = tiny_model("bert_base")
      assert {:error, "no featurizer found in " <> _} = PyBridge.load_featurizer({:local, dir})
      assert {:error, _} = PyBridge.load_featurizer({:local, "/nonexistent/model"})
    end
  end

  defp flat(%PyBridge.Tensor{data: data}),
    do: PyBridge.Tensor.new(data, {:u, 8}, {4, 4})
end
