from nurture_lake.jobs.score import main

if __name__ == "__main__":
    main()
