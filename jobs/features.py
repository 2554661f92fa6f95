from nurture_lake.jobs.features import main

if __name__ == "__main__":
    main()
