defmodule PyBridge.Vision.ImageClassification do
  @moduledoc false

  alias PyBridge.{Featurizer, Shared}
  alias PyBridge.Vision.Image

  def serving(model_info, %Featurizer{} = featurizer, opts) do
    Shared.require_architecture!(model_info, [
      :for_image_classification,
      :for_image_classification_with_teacher
    ])

    opts =
      Shared.validate_options!(opts, [
        :compile,
        top_k: 5,
        scores_function: :softmax,
        defn_options: [],
        preallocate_params: false
      ])

    compile = Shared.compile!(opts[:compile], [:batch_size])
    Shared.one_of!(opts[:scores_function], [:softmax, :sigmoid, :none], :scores_function)
    Shared.positive_integer!(opts[:top_k], :top_k)

    options =
      Map.merge(Featurizer.worker_options(featurizer), %{
        top_k: opts[:top_k],
        scores_function: opts[:scores_function]
      })

    Shared.serving(model_info, :image_classification, options, compile, &Image.validate/1)
  end
end
